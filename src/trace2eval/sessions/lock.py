"""One runner per session folder at a time.

A lock file holds the owner's host and pid. A lock left behind by a process that died on this
host is taken over; a lock held by a live process (or another host, which we cannot check) stops
the second runner with a clear message.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from trace2eval.errors import SessionError

LOCK_NAME = ".trace2eval.lock"
STALE_AFTER_S = 6 * 3600  # another host's lock this old is abandoned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SessionLock:
    def __init__(self, session_dir: Path):
        self.path = Path(session_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> "SessionLock":
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._take_over_if_stale():
                    continue
                owner = self._owner()
                raise SessionError(
                    f"session {self.path.parent} is in use by pid {owner.get('pid')} on {owner.get('host')}",
                    "wait for that run to finish, or delete the lock file "
                    f"{self.path} if that process is gone",
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return self
        raise SessionError(f"could not lock {self.path.parent}", "retry")

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _take_over_if_stale(self) -> bool:
        owner = self._owner()
        same_host = owner.get("host") == socket.gethostname()
        stale = (same_host and not _alive(int(owner.get("pid", 0) or 0))) or (
            time.time() - float(owner.get("since", 0) or 0) > STALE_AFTER_S
        )
        if not owner or stale:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return True
        return False

    def release(self) -> None:
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "SessionLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
