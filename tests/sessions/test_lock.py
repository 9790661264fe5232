"""The session lock excludes: real processes racing for one folder, stale locks, heartbeats, job runs."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import nullcontext

import pytest
from environment import missing

from trace2eval.errors import SessionError
from trace2eval.sessions import lock as locking
from trace2eval.sessions.lock import LOCK_NAME, SessionLock, job_run

CONTENDERS = 100


def _no_hard_links(*args, **kwargs):
    raise OSError(errno.EPERM, "hard links not supported here")


def _contend(folder: str, mode: str, barrier, hold, results) -> None:
    """One contender: wait until all are ready, try once, keep a won lock until everyone has tried."""
    if mode in ("no-flock", "exclusive-create"):
        locking._serialized = lambda path: nullcontext()  # as on a file system without flock
    if mode == "exclusive-create":
        os.link = _no_hard_links  # as on a file system without hard links
    try:
        barrier.wait(timeout=60)
        held = SessionLock(folder).acquire()
    except SessionError as exc:
        results.put(("refused", os.getpid(), str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("error", os.getpid(), repr(exc)))
        return
    results.put(("won", os.getpid(), json.loads((held.path).read_text())["pid"]))
    hold.wait(timeout=120)
    held.release()


def _race(folder, mode: str) -> list[tuple]:
    context = multiprocessing.get_context("fork")  # real processes, started fast enough to collide
    barrier, hold, results = context.Barrier(CONTENDERS), context.Event(), context.Queue()
    procs = [
        context.Process(target=_contend, args=(str(folder), mode, barrier, hold, results)) for _ in range(CONTENDERS)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        hold.set()
        for proc in procs:
            proc.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("mode", ["flock", "no-flock", "exclusive-create"])
def test_one_winner_among_100_simultaneous_processes(tmp_path, mode):
    outcomes = _race(tmp_path, mode)
    errors = [o for o in outcomes if o[0] == "error"]
    assert not errors, errors[:3]
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(winners) == 1, f"{len(winners)} processes all believed they held the lock"
    assert winners[0][1] == winners[0][2]  # the lock file names the winner
    refusals = [o[2] for o in outcomes if o[0] == "refused"]
    assert len(refusals) == CONTENDERS - 1
    assert all("in use by pid" in text or "being locked by another process" in text for text in refusals)
    assert not (tmp_path / LOCK_NAME).exists()  # the winner released it
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary files left


def test_one_winner_among_100_processes_taking_over_a_stale_lock(tmp_path):
    _write_record(tmp_path, host=socket.gethostname(), pid=_dead_pid())
    outcomes = _race(tmp_path, "flock")
    assert sum(o[0] == "won" for o in outcomes) == 1
    assert sum(o[0] == "refused" for o in outcomes) == CONTENDERS - 1


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _write_record(folder, **fields) -> None:
    record = {
        "token": "theirs",
        "host": "other-host",
        "pid": 4242,
        "since": time.time(),
        "heartbeat": time.time(),
        **fields,
    }
    (folder / LOCK_NAME).write_text(json.dumps(record))


def _holder(folder) -> dict:
    return json.loads((folder / LOCK_NAME).read_text())


def test_a_dead_process_on_this_host_loses_its_lock_at_once(tmp_path):
    _write_record(tmp_path, host=socket.gethostname(), pid=_dead_pid())
    with SessionLock(tmp_path):
        assert _holder(tmp_path)["pid"] == os.getpid()


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        if locking._pid_start(sleeper.pid) is None:
            missing("no /proc here to tell process start times", "the takeover test needs Linux's /proc")
        _write_record(tmp_path, host=socket.gethostname(), pid=sleeper.pid, pid_start="1")
        with SessionLock(tmp_path):
            assert _holder(tmp_path)["pid"] == os.getpid()
        _write_record(tmp_path, host=socket.gethostname(), pid=sleeper.pid, pid_start=locking._pid_start(sleeper.pid))
        with pytest.raises(SessionError, match=f"in use by pid {sleeper.pid}"):
            SessionLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_another_hosts_lock_is_honoured_until_its_heartbeat_expires(tmp_path):
    _write_record(tmp_path, host="cluster-a", pid=77, run_id="111", heartbeat=time.time() - 30)
    with pytest.raises(SessionError) as refused:
        SessionLock(tmp_path).acquire()
    text = str(refused.value)
    assert "in use by pid 77 on cluster-a (job run 111)" in text and "last heartbeat 30 s ago" in text
    assert "taken over automatically 600 s after its last heartbeat (in about 570 s)" in text
    assert f"delete {tmp_path / LOCK_NAME}" in text
    _write_record(tmp_path, host="cluster-a", pid=77, run_id="111", heartbeat=time.time() - locking.STALE_AFTER_S - 5)
    with SessionLock(tmp_path):
        assert _holder(tmp_path)["host"] == socket.gethostname()


def test_a_retry_of_the_same_job_run_takes_its_lock_over_at_once(tmp_path):
    _write_record(tmp_path, host="driver-that-died", pid=77, run_id="9001")  # heartbeat fresh
    with job_run("9002"), pytest.raises(SessionError, match="job run 9001"):
        SessionLock(tmp_path).acquire()  # another run: honoured
    with job_run("9001"), SessionLock(tmp_path):
        assert _holder(tmp_path)["run_id"] == "9001" and _holder(tmp_path)["host"] == socket.gethostname()
    assert locking.current_run_id() is None  # job_run restores the environment


def test_a_lock_file_still_being_written_is_not_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_bytes(b"")  # what an exclusive create looks like before its write
    with pytest.raises(SessionError, match="being locked by another process right now — retry"):
        SessionLock(tmp_path).acquire()
    old = time.time() - locking.UNREADABLE_GRACE_S - 5
    os.utime(tmp_path / LOCK_NAME, (old, old))  # left empty by a crash long ago
    with SessionLock(tmp_path):
        assert _holder(tmp_path)["pid"] == os.getpid()


def test_heartbeat_refreshes_the_record_and_notices_a_takeover(tmp_path, capsys):
    held = SessionLock(tmp_path, heartbeat_s=0.05).acquire()
    first = _holder(tmp_path)
    deadline = time.time() + 5
    while _holder(tmp_path)["heartbeat"] == first["heartbeat"] and time.time() < deadline:
        time.sleep(0.02)
    assert _holder(tmp_path)["heartbeat"] > first["heartbeat"] and _holder(tmp_path)["token"] == first["token"]
    _write_record(tmp_path, host="someone-else")  # taken over while we were (say) suspended
    while not held._heartbeat.lost and time.time() < deadline:
        time.sleep(0.02)
    assert held._heartbeat.lost
    assert "was taken over by another runner" in capsys.readouterr().err
    held.release()
    assert _holder(tmp_path)["host"] == "someone-else"  # release never deletes another holder's lock


def test_waiting_for_a_lock_gets_it_when_the_holder_releases(tmp_path):
    first = SessionLock(tmp_path).acquire()
    timer = threading.Timer(0.5, first.release)
    timer.start()
    started = time.monotonic()
    with pytest.raises(SessionError):
        SessionLock(tmp_path).acquire()  # no wait: refused at once
    second = SessionLock(tmp_path).acquire(wait_s=10)
    assert 0.3 < time.monotonic() - started < 5 and _holder(tmp_path)["token"] == second._record["token"]
    second.release()
    timer.join()


def test_the_lock_record_names_its_owner(tmp_path):
    with job_run("4711"), SessionLock(tmp_path):
        record = _holder(tmp_path)
    assert record["host"] == socket.gethostname() and record["pid"] == os.getpid() and record["run_id"] == "4711"
    assert record["since"] <= record["heartbeat"] <= time.time() and len(record["token"]) == 32
