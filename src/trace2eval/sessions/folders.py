"""A folder of files that is either local or in a Unity Catalog Volume reached through the Files API.

Inside a Databricks job `/Volumes/<catalog>/<schema>/<volume>/...` is an ordinary path (a FUSE
mount), so it is a `LocalFolder`. On a laptop that path does not exist; the same path then names a
`VolumeFolder` (see `filesapi.py`) that reads and writes through the workspace's Files API. Code
that keeps state across runs (the living suite, the watermark) works on this small interface and
never cares which one it has; `filesapi.open_folder(path)` picks one. This module knows nothing of
the Files API, so `filesapi.py` builds on it and never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol

from trace2eval.sessions.files import write_bytes
from trace2eval.sessions.lock import SessionLock

VOLUMES_ROOT = "/Volumes/"
ACCESS_ENV = "TRACE2EVAL_VOLUME_ACCESS"  # auto (default) | files | local


class Folder(Protocol):
    """Relative paths use `/`; missing files read as None."""

    location: str

    def read_bytes(self, rel: str) -> bytes | None: ...

    def write_bytes(self, rel: str, data: bytes) -> None: ...

    def delete(self, rel: str) -> None: ...

    def list_files(self, rel: str = "") -> list[str]: ...

    def lock(self, wait_s: float = 0.0): ...


class LocalFolder:
    """A folder on this machine (or the Volume's FUSE mount inside Databricks)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return (self.path / rel).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        write_bytes(self.path / rel, data)  # atomic: a reader (or a crash) never sees half a file

    def delete(self, rel: str) -> None:
        (self.path / rel).unlink(missing_ok=True)

    def list_files(self, rel: str = "") -> list[str]:
        base = self.path / rel
        if not base.is_dir():
            return []
        found = []
        for root, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                found.append(str(PurePosixPath(Path(root, name).relative_to(self.path).as_posix())))
        return found

    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        held = SessionLock(self.path).acquire(wait_s)
        try:
            yield
        finally:
            held.release()


def is_volume_path(path: str | Path) -> bool:
    return str(path).startswith(VOLUMES_ROOT)


def volume_root(path: str | Path) -> str:
    """`/Volumes/<catalog>/<schema>/<volume>` of a path inside a Volume."""
    parts = PurePosixPath(str(path)).parts  # ('/', 'Volumes', catalog, schema, volume, ...)
    return str(PurePosixPath(*parts[:5]))


def needs_files_api(path: str | Path) -> bool:
    """True for a `/Volumes/...` path that is not mounted here (i.e. outside a Databricks workspace)."""
    if not is_volume_path(path):
        return False
    mode = os.environ.get(ACCESS_ENV, "auto").lower()
    if mode == "files":
        return True
    if mode == "local":
        return False
    return not Path(volume_root(path)).is_dir()
