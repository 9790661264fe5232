"""A Volume folder reached from outside a workspace, through the Files API of `databricks-sdk`.

Inside a Databricks job a Volume is a mounted path and none of this is used. From a laptop the same
`/Volumes/...` path names a `VolumeFolder` that reads and writes each file with one Files API call.
A lock file in the Volume (`RemoteLock`: the record format and rules of `lock.py`, created with
`overwrite=false`) keeps a laptop and a job from working on one session at the same time.

Credentials come from the SDK's own chain (DATABRICKS_HOST/DATABRICKS_TOKEN, a profile from
`databricks auth login`, OAuth, ...); trace2eval never stores them.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from trace2eval import ui
from trace2eval.errors import Trace2EvalError
from trace2eval.sessions import lock as locking
from trace2eval.sessions.folders import Folder, LocalFolder, needs_files_api
from trace2eval.sessions.lock import LOCK_NAME

# The local mirror's record of the last sync (see `mirror.py`); named here because neither it nor
# the lock is a session file, in the Volume or in its local copy.
SYNC_STATE = ".trace2eval-sync.json"
SKIP_NAMES = {LOCK_NAME, SYNC_STATE, "__pycache__"}


class VolumeError(Trace2EvalError):
    """A Volume cannot be reached, read or written through the Files API."""


def workspace_client():
    """A WorkspaceClient from the standard auth chain, with a clear error when there is none.

    An unreachable host fails within seconds: the SDK would otherwise retry for minutes.
    """
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    try:
        config = Config(
            product="trace2eval",
            product_version=_version(),
            # Session files are small: the plain Files API (one PUT/GET per file) is enough and is
            # the documented wire protocol; the experimental client adds presigned-URL transfers.
            disable_experimental_files_api_client=True,
            retry_timeout_seconds=5,  # only for the host-metadata probe during setup
        )
    except Exception as exc:  # the SDK raises ValueError with its own explanation
        raise VolumeError(
            f"cannot authenticate to a Databricks workspace to reach the Volume ({str(exc).splitlines()[0][:300]})",
            "set DATABRICKS_HOST and DATABRICKS_TOKEN, or run `databricks auth login` and set DATABRICKS_CONFIG_PROFILE",
        ) from None
    _check_reachable(config.host)
    config.retry_timeout_seconds = 120  # transient 429/503 answers are worth waiting for
    return WorkspaceClient(config=config)


def _check_reachable(host: str, timeout_s: float = 5.0) -> None:
    url = urlparse(host)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise VolumeError(
            f"cannot reach the Databricks workspace at {host} ({exc.strerror or exc})",
            "check DATABRICKS_HOST (or your profile) and the network",
        ) from None


def _version() -> str:
    from trace2eval import __version__

    return __version__


def _translate(exc: Exception, what: str) -> Trace2EvalError:
    from databricks.sdk.errors import NotFound, PermissionDenied, Unauthenticated

    if isinstance(exc, Trace2EvalError):
        return exc  # already says what to do
    if isinstance(exc, NotFound):
        return VolumeError(
            f"{what}: not found", "check the path; create the Volume first (CREATE VOLUME <catalog>.<schema>.<volume>)"
        )
    if isinstance(exc, PermissionDenied):
        return VolumeError(
            f"{what}: permission denied",
            "you need READ VOLUME and WRITE VOLUME on the Volume (and USE CATALOG / USE SCHEMA)",
        )
    if isinstance(exc, Unauthenticated):
        return VolumeError(f"{what}: the workspace rejected the credentials", "refresh them (`databricks auth login`)")
    return VolumeError(f"{what}: {type(exc).__name__}: {str(exc)[:300]}", "check DATABRICKS_HOST and your network")


def open_folder(path: str | Path) -> Folder:
    """The folder at `path`: local, or a Volume through the Files API when it is not mounted here."""
    if needs_files_api(path):
        return VolumeFolder(str(path))
    return LocalFolder(path)


class VolumeFolder:
    """A folder in a Volume, read and written through the Files API."""

    def __init__(self, path: str, client=None):
        self.location = str(PurePosixPath(path))
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = workspace_client()
        return self._client

    def _abs(self, rel: str) -> str:
        return str(PurePosixPath(self.location) / rel) if rel else self.location

    def read_bytes(self, rel: str) -> bytes | None:
        from databricks.sdk.errors import NotFound

        try:
            response = self.client.files.download(self._abs(rel))
            with response.contents as stream:
                return stream.read()
        except NotFound:
            return None
        except Exception as exc:
            raise _translate(exc, f"cannot read {self._abs(rel)}") from None

    def write_bytes(self, rel: str, data: bytes, overwrite: bool = True) -> None:
        try:
            self.client.files.upload(self._abs(rel), io.BytesIO(data), overwrite=overwrite)
        except Exception as exc:
            from databricks.sdk.errors import AlreadyExists, ResourceAlreadyExists, ResourceConflict

            if isinstance(exc, (AlreadyExists, ResourceAlreadyExists, ResourceConflict)):
                raise FileExistsError(self._abs(rel)) from None
            raise _translate(exc, f"cannot write {self._abs(rel)}") from None

    def delete(self, rel: str) -> None:
        from databricks.sdk.errors import NotFound

        try:
            self.client.files.delete(self._abs(rel))
        except NotFound:
            pass
        except Exception as exc:
            raise _translate(exc, f"cannot delete {self._abs(rel)}") from None

    def exists(self) -> bool:
        from databricks.sdk.errors import NotFound

        try:
            self.client.files.get_directory_metadata(self.location)
            return True
        except NotFound:
            return False
        except Exception as exc:
            raise _translate(exc, f"cannot read {self.location}") from None

    def list_files(self, rel: str = "") -> list[str]:
        """Every file below `rel`, recursively, as paths relative to this folder."""
        from databricks.sdk.errors import NotFound

        found: list[str] = []
        pending = [self._abs(rel)]
        root = PurePosixPath(self.location)
        while pending:
            directory = pending.pop()
            try:
                entries = list(self.client.files.list_directory_contents(directory))
            except NotFound:
                continue
            except Exception as exc:
                raise _translate(exc, f"cannot list {directory}") from None
            for entry in entries:
                path = PurePosixPath(entry.path.rstrip("/"))
                if path.name in SKIP_NAMES or path.name.startswith(LOCK_NAME):
                    continue
                if entry.is_directory:
                    pending.append(str(path))
                else:
                    found.append(str(path.relative_to(root)))
        return sorted(found)

    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        held = RemoteLock(self).acquire(wait_s)
        try:
            yield
        finally:
            held.release()


class RemoteLock:
    """The session lock (see `lock.py`) in a Volume folder, through the Files API.

    Created with `overwrite=false`: the Files API documents that such an upload fails when the file
    exists, and the record is the upload's whole body, so a reader never sees a half-written lock.
    What it does not document is whether two *simultaneous* creates are serialized (a Volume is
    cloud object storage underneath), and it has no conditional replace or delete. So the lock reads
    its record back after creating it (a lost race shows another token), judges a stale lock only
    from its record (same job run, dead pid on this host, expired heartbeat), deletes it only when
    it is unchanged since it was judged, and the heartbeat checks the token every beat, so a
    holder that lost a race learns of it within one beat instead of never.
    """

    def __init__(
        self,
        folder: VolumeFolder,
        *,
        run_id: str | None = None,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
    ):
        self.folder = folder
        self.held = False
        self.run_id = run_id
        self.heartbeat_s = locking.HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.stale_after_s = locking.STALE_AFTER_S if stale_after_s is None else stale_after_s
        self._record: dict[str, Any] | None = None
        self._heartbeat: locking.Heartbeat | None = None

    @property
    def _where(self) -> str:
        return f"{self.folder.location}/{LOCK_NAME}"

    def _mine(self, raw: bytes | None, record: dict[str, Any] | None = None) -> bool:
        mine = record or self._record
        found = locking.parse_record(raw)
        return bool(found and mine and found.get("token") == mine["token"])

    def _file_age(self) -> float | None:
        try:
            modified = self.folder.client.files.get_metadata(self._where).last_modified
            return time.time() - parsedate_to_datetime(modified).timestamp() if modified else None
        except Exception:
            return None  # unknown: an unreadable lock then counts as being written

    def acquire(self, wait_s: float = 0.0) -> "RemoteLock":
        if self.held:
            return self
        me = locking.owner_record("files-api", self.run_id)
        data = json.dumps(me).encode()
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            record = None
            for _ in range(3):
                try:
                    self.folder.write_bytes(LOCK_NAME, data, overwrite=False)
                    created = True
                except FileExistsError:
                    created = False
                raw = self.folder.read_bytes(LOCK_NAME)
                if created and self._mine(raw, me):
                    self._record, self.held = me, True
                    self._heartbeat = locking.Heartbeat(self._beat, self.heartbeat_s, self.folder.location)
                    return self
                if raw is None:
                    continue  # released meanwhile
                record = locking.parse_record(raw)
                stale, why = locking.verdict(
                    record, me, file_age_s=None if record else self._file_age(), stale_after_s=self.stale_after_s
                )
                if not stale:
                    break
                if self.folder.read_bytes(LOCK_NAME) == raw:
                    ui.say(f"Taking over the lock on {self.folder.location}: {why}")
                    self.folder.delete(LOCK_NAME)
            if time.monotonic() >= deadline:
                raise locking.in_use_error(self.folder.location, self._where, record, self.stale_after_s) from None
            if not announced:
                ui.say(f"Waiting for {self.folder.location}: in use by {locking.describe(record)}")
                announced = True
            time.sleep(min(locking.POLL_S, max(0.0, deadline - time.monotonic())))

    def _beat(self) -> bool:
        if not self._mine(self.folder.read_bytes(LOCK_NAME)):
            return False
        self._record = {**self._record, "heartbeat": time.time()}
        self.folder.write_bytes(LOCK_NAME, json.dumps(self._record).encode(), overwrite=True)
        return True

    def release(self) -> None:
        if not self.held:
            return
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._mine(self.folder.read_bytes(LOCK_NAME)):
            self.folder.delete(LOCK_NAME)
        self.held = False

    def __enter__(self) -> "RemoteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
