"""The local folder a CLI command works in, for a session that may live in a Volume.

For a local path (or a Volume mounted here) that is the path itself. For a Volume path outside a
workspace (`run --out /Volumes/<catalog>/<schema>/<volume>/sessions`, or `--session`, `resume`,
`status` on such a path) it is a local mirror of the session folder:

    pull (download the folder) → run tasks locally → push the files that changed (after every task)

so a person can start, run, resume or inspect the same session a job works on, while the lock in
the Volume keeps the two from working on it at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from trace2eval import ui
from trace2eval.errors import SessionError
from trace2eval.sessions.filesapi import VolumeFolder
from trace2eval.sessions.folders import needs_files_api
from trace2eval.sessions.mirror import Mirror, mirror_path


@contextmanager
def session_workdir(
    path: str | Path, *, must_exist: bool = True, read_only: bool = False
) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A local folder to run a session in, and a `sync()` to call after each task.

    For a local path (or a Volume mounted here) that is the path itself and `sync` does nothing.
    For a Volume path outside a workspace it is a mirror: pulled first, locked in the Volume for
    the duration, pushed by `sync()` and once more on the way out (also after a failure, so the
    Volume shows where the session stopped). `read_only` (e.g. `status`) pulls without locking.
    """
    if not needs_files_api(path):
        yield Path(path), lambda: None
        return
    remote = VolumeFolder(str(path))
    mirror = Mirror(remote, mirror_path(str(path)))
    if read_only:
        _pull(mirror, must_exist)
        yield mirror.local, lambda: None
        return
    mirror.local.mkdir(parents=True, exist_ok=True)
    with remote.lock():
        _pull(mirror, must_exist)

        def sync() -> None:
            pushed = mirror.push()
            if pushed:
                ui.say(f"Pushed {pushed} files to {remote.location}")

        try:
            yield mirror.local, sync
        finally:
            sync()


def _pull(mirror: Mirror, must_exist: bool) -> None:
    count = mirror.pull()
    if must_exist and count == 0:
        raise SessionError(
            f"{mirror.remote.location} is not a trace2eval session in the Volume (it is empty or missing)",
            "pass the session folder a run printed, e.g. /Volumes/<catalog>/<schema>/<volume>/sessions/<id>",
        )
    if count:
        ui.say(f"Pulled {count} files from {mirror.remote.location}")


@contextmanager
def output_workdir(out: str | Path) -> Iterator[tuple[Path, Callable[[Path], Callable[[], None]]]]:
    """For `run --out /Volumes/...`: a local folder to create the session in, and `attach(session_dir)`
    that locks `<out>/<session-id>` in the Volume and returns the session's `sync()`."""
    if not needs_files_api(out):
        yield Path(out), lambda session_dir: lambda: None
        return
    parent = VolumeFolder(str(out))
    local_parent = mirror_path(str(out))
    local_parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        mirrors: list[Mirror] = []

        def attach(session_dir: Path) -> Callable[[], None]:
            remote = VolumeFolder(f"{parent.location}/{session_dir.name}", parent.client)
            stack.enter_context(remote.lock())
            mirror = Mirror(remote, session_dir)
            mirrors.append(mirror)

            def sync() -> None:
                pushed = mirror.push()
                if pushed:
                    ui.say(f"Pushed {pushed} files to {remote.location}")

            return sync

        try:
            yield local_parent, attach
        finally:
            for mirror in mirrors:
                mirror.push()
