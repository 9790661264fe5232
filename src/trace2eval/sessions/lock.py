"""One runner per folder at a time (a session folder, or the living suite).

The lock is a file `.trace2eval.lock` holding its owner's record:

    {"token", "host", "pid", "pid_start", "run_id", "since", "heartbeat", "via"}

- **Created with its content, atomically.** The record is written to a private temporary file
  and hard-linked into place (`os.link` fails if the lock exists), so no other process can ever
  read an empty or half-written lock. Where hard links are not supported, `O_CREAT | O_EXCL`
  creates it; a reader that finds it still empty treats it as being written (never as stale)
  until it is older than `UNREADABLE_GRACE_S`.
- **Heartbeat.** The holder rewrites `heartbeat` every `HEARTBEAT_S` seconds. A lock is stale when
  its heartbeat is older than `STALE_AFTER_S` (whoever holds it: another host, or a process that
  is stuck or suspended), at once when its process is dead on this host (or its pid was reused),
  and at once when it belongs to an earlier attempt of the *same* Databricks job run (a task
  retried on a new cluster after the driver died: the dead driver cannot heartbeat, and nobody
  else works for that run).
- **Takeover and creation are serialized on one host** by `flock` on the folder itself, so two
  processes cannot both judge a lock stale and both replace it. Across hosts (a Volume seen by
  two clusters, or a laptop through the Files API) there is no shared `flock`: exclusion then rests
  on the exclusive create, and a takeover can race only when two others find the same stale lock
  within the same moment; the loser's heartbeat notices the lock is no longer its own and warns.

Timestamps are the holder's clock: hosts whose clocks differ by more than `STALE_AFTER_S` would
misjudge each other's heartbeats (NTP keeps clusters and laptops far closer than that).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trace2eval import ui
from trace2eval.errors import SessionError

LOCK_NAME = ".trace2eval.lock"
RUN_ID_ENV = "TRACE2EVAL_RUN_ID"  # the Databricks job run this process works for (set by the job tasks)
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # twenty missed heartbeats: a pause (GC, a slow disk) is not a death
UNREADABLE_GRACE_S = 30.0  # an empty lock file younger than this is still being written
POLL_S = 1.0


# -- who we are -------------------------------------------------------------------------------


def current_run_id() -> str | None:
    """The Databricks job run this process works for, when it runs as a job task."""
    return os.environ.get(RUN_ID_ENV) or None


@contextmanager
def job_run(run_id: str | None) -> Iterator[None]:
    """Within this block, locks are owned by job run `run_id` (so its retried tasks can take them over)."""
    previous = os.environ.get(RUN_ID_ENV)
    if run_id:
        os.environ[RUN_ID_ENV] = str(run_id)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = previous


def _pid_start(pid: int) -> str | None:
    """When process `pid` started (Linux clock ticks since boot): tells a reused pid from the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_record(via: str, run_id: str | None = None) -> dict[str, Any]:
    now = time.time()
    pid = os.getpid()
    return {
        "token": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _pid_start(pid),
        "run_id": run_id if run_id is not None else current_run_id(),
        "since": now,
        "heartbeat": now,
        "via": via,
    }


def parse_record(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def heartbeat_age(record: dict[str, Any]) -> float:
    # Records written before heartbeats existed only have `since`.
    return time.time() - _number(record.get("heartbeat", record.get("since")))


def verdict(
    record: dict[str, Any] | None,
    me: dict[str, Any],
    *,
    file_age_s: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> tuple[bool, str]:
    """(stale, why): may `me` take over the lock `record` describes?"""
    if record is None:
        if file_age_s is not None and file_age_s > UNREADABLE_GRACE_S:
            return True, f"the lock file has held no readable owner for {file_age_s:.0f} s (left by a crash)"
        return False, "another process is writing the lock right now"
    same_host = record.get("host") == me["host"]
    pid = int(_number(record.get("pid")))
    if record.get("run_id") and record.get("run_id") == me.get("run_id") and not (same_host and pid == me["pid"]):
        return True, f"it belongs to an earlier attempt of this same job run {record['run_id']}"
    if same_host:
        if not _alive(pid):
            return True, f"process {pid} on this host is gone"
        started = _pid_start(pid)
        if record.get("pid_start") and started and started != record.get("pid_start"):
            return True, f"process {pid} on this host is gone (its pid now belongs to another process)"
    age = heartbeat_age(record)
    if age > stale_after_s:
        return True, f"its last heartbeat was {age:.0f} s ago (more than {stale_after_s:.0f} s)"
    return False, "its holder is alive"


def describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "another process (its lock is being written)"
    text = f"pid {record.get('pid')} on {record.get('host')}"
    if record.get("run_id"):
        text += f" (job run {record['run_id']})"
    if record.get("via"):
        text += f" via {record['via']}"
    since = _number(record.get("since"))
    if since:
        text += f", since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(since))}"
    return text + f", last heartbeat {max(0.0, heartbeat_age(record)):.0f} s ago"


def in_use_error(
    location: str, lock_location: str, record: dict[str, Any] | None, stale_after_s: float = STALE_AFTER_S
) -> SessionError:
    if record is None:
        return SessionError(f"{location} is being locked by another process right now", "retry in a few seconds")
    left = max(0.0, stale_after_s - heartbeat_age(record))
    return SessionError(
        f"{location} is in use by {describe(record)}",
        f"wait for that run to finish; if it is gone, its lock is taken over automatically {stale_after_s:.0f} s after "
        f"its last heartbeat (in about {left:.0f} s), or delete {lock_location} once you are sure it is not running",
    )


# -- the heartbeat ----------------------------------------------------------------------------


class Heartbeat:
    """Calls `beat()` every `interval` seconds until stopped; `beat()` returns False when the lock is lost."""

    def __init__(self, beat: Callable[[], bool], interval: float, what: str):
        self._beat, self._interval, self._what = beat, interval, what
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"trace2eval-lock-heartbeat {what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                still_mine = self._beat()
            except Exception:  # a transient failure (disk, network): the next beat tries again
                continue
            if not still_mine:
                self.lost = True
                ui.warn(
                    f"the lock on {self._what} was taken over by another runner (this one stopped heartbeating "
                    "for too long); check that runner's results before trusting this one's"
                )
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self._interval))


# -- a lock in a local folder ----------------------------------------------------------------


@contextmanager
def _serialized(folder: Path) -> Iterator[None]:
    """Hold `flock` on the folder while deciding and changing the lock (one host's processes queue here).

    Where the file system has no `flock` (some FUSE mounts) the exclusive create still decides who
    holds the lock; only a takeover race between two processes is then not excluded.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


class SessionLock:
    def __init__(
        self,
        session_dir: Path,
        *,
        run_id: str | None = None,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
    ):
        self.path = Path(session_dir) / LOCK_NAME
        self.held = False
        self.run_id = run_id
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.stale_after_s = STALE_AFTER_S if stale_after_s is None else stale_after_s
        self._record: dict[str, Any] | None = None
        self._heartbeat: Heartbeat | None = None
        self._pid = 0

    # reading and writing the lock file

    def _read(self) -> tuple[bytes | None, float | None]:
        try:
            raw = self.path.read_bytes()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None, None
        return raw, age

    def _create(self, data: bytes) -> bool:
        """Put the lock in place with its content, unless one exists. True when this call created it."""
        tmp = self.path.with_name(f"{LOCK_NAME}.{uuid.uuid4().hex}.tmp")
        try:
            _write_new(tmp, data)
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (
                    errno.EPERM,
                    errno.EOPNOTSUPP,
                    errno.ENOTSUP,
                    errno.EXDEV,
                    errno.EMLINK,
                    errno.ENOSYS,
                ):
                    raise
            try:  # no hard links here: exclusive create, then write (readers wait while it is empty)
                _write_new(self.path, data)
                return True
            except FileExistsError:
                return False
        finally:
            tmp.unlink(missing_ok=True)

    def _replace(self, data: bytes) -> None:
        tmp = self.path.with_name(f"{LOCK_NAME}.{uuid.uuid4().hex}.tmp")
        try:
            _write_new(tmp, data)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _mine(self, raw: bytes | None) -> bool:
        record = parse_record(raw)
        return bool(record and self._record and record.get("token") == self._record["token"])

    # the lock's life

    def acquire(self, wait_s: float = 0.0) -> "SessionLock":
        """Take the lock, or raise SessionError naming its holder. `wait_s` > 0 waits that long for it."""
        if self.held:
            return self
        me = owner_record("local", self.run_id)
        data = json.dumps(me).encode()
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            record = None
            with _serialized(self.path.parent):
                for _ in range(3):  # a stale lock removed, or a lock released meanwhile: try again at once
                    if self._create(data):
                        self._record, self.held, self._pid = me, True, os.getpid()
                        self._heartbeat = Heartbeat(self._beat, self.heartbeat_s, str(self.path.parent))
                        return self
                    raw, age = self._read()
                    if raw is None and age is None:
                        continue  # released between our create and our read
                    record = parse_record(raw)
                    stale, why = verdict(record, me, file_age_s=age, stale_after_s=self.stale_after_s)
                    if not stale:
                        break
                    if self._read()[0] == raw:  # unchanged since judged (serialized on this host)
                        ui.say(f"Taking over the lock on {self.path.parent}: {why}")
                        self.path.unlink(missing_ok=True)
            if time.monotonic() >= deadline:
                raise in_use_error(str(self.path.parent), str(self.path), record, self.stale_after_s) from None
            if not announced:
                ui.say(f"Waiting for {self.path.parent}: in use by {describe(record)}")
                announced = True
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _beat(self) -> bool:
        with _serialized(self.path.parent):
            if not self._mine(self._read()[0]):
                return False
            self._record = {**self._record, "heartbeat": time.time()}
            self._replace(json.dumps(self._record).encode())
            return True

    def release(self) -> None:
        if not self.held or os.getpid() != self._pid:
            return  # a forked child never releases its parent's lock
        if self._heartbeat is not None:
            self._heartbeat.stop()
        with _serialized(self.path.parent):
            if self._mine(self._read()[0]):
                self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "SessionLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
