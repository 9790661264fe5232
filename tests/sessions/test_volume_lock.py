"""The lock in a Volume through the Files API: the real databricks-sdk client against a loopback
workspace. Same rules as the local lock: owner record written whole, heartbeat, same-run takeover.

The loopback server answers `overwrite=false` atomically (it checks and stores under one lock);
the real Files API documents the refusal but not how simultaneous creates are ordered, which is
why `RemoteLock` reads its record back and checks it on every heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from filesapi_server import TEST_VOLUME, serve_workspace

from trace2eval.errors import SessionError
from trace2eval.sessions import lock as locking
from trace2eval.sessions.lock import LOCK_NAME, job_run
from trace2eval.sessions.filesapi import RemoteLock, VolumeFolder, workspace_client

VOLUME = TEST_VOLUME
FOLDER = f"{VOLUME}/suite"


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    yield from serve_workspace(monkeypatch, tmp_path)


def _put_record(**fields) -> None:
    record = {
        "token": "theirs",
        "host": "cluster-a",
        "pid": 4242,
        "since": time.time(),
        "heartbeat": time.time(),
        "via": "local",
        **fields,
    }
    VolumeFolder(FOLDER).write_bytes(LOCK_NAME, json.dumps(record).encode())


def _holder() -> dict:
    return json.loads(VolumeFolder(FOLDER).read_bytes(LOCK_NAME))


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_one_winner_among_simultaneous_clients(workspace):
    n = 16
    barrier, outcomes = threading.Barrier(n), []
    clients = [workspace_client() for _ in range(n)]  # one SDK client (and connection pool) each

    def contend(client):
        barrier.wait(timeout=30)
        try:
            held = RemoteLock(VolumeFolder(FOLDER, client)).acquire()
            outcomes.append(("won", held))
        except SessionError as exc:
            outcomes.append(("refused", str(exc)))

    threads = [threading.Thread(target=contend, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [o[1] for o in outcomes if o[0] == "won"]
    assert len(winners) == 1 and len(outcomes) == n
    assert all("in use by pid" in o[1] for o in outcomes if o[0] == "refused")
    assert _holder()["token"] == winners[0]._record["token"] and _holder()["via"] == "files-api"
    winners[0].release()
    assert VolumeFolder(FOLDER).read_bytes(LOCK_NAME) is None


def test_same_job_run_takes_over_at_once_another_run_waits(workspace):
    _put_record(host="driver-that-died", run_id="555")  # fresh heartbeat: looks alive
    with job_run("556"), pytest.raises(SessionError) as refused:
        RemoteLock(VolumeFolder(FOLDER)).acquire()
    assert "in use by pid 4242 on driver-that-died (job run 555) via local" in str(refused.value)
    assert f"or delete {FOLDER}/{LOCK_NAME}" in str(refused.value)
    with job_run("555"), VolumeFolder(FOLDER).lock():
        assert _holder()["run_id"] == "555" and _holder()["host"] == socket.gethostname()
    assert VolumeFolder(FOLDER).read_bytes(LOCK_NAME) is None


def test_files_api_lock_checks_host_pid_and_heartbeat(workspace):
    _put_record(host=socket.gethostname(), pid=_dead_pid())  # a laptop process that crashed
    with VolumeFolder(FOLDER).lock():
        assert _holder()["pid"] == os.getpid()
    _put_record(host=socket.gethostname(), pid=os.getppid())  # alive here: honoured
    with pytest.raises(SessionError, match=f"in use by pid {os.getppid()}"):
        RemoteLock(VolumeFolder(FOLDER)).acquire()
    _put_record(heartbeat=time.time() - locking.STALE_AFTER_S - 1)  # another host, silent too long
    with VolumeFolder(FOLDER).lock():
        assert _holder()["pid"] == os.getpid()


def test_heartbeat_goes_over_the_wire_and_release_spares_a_new_holder(workspace):
    held = RemoteLock(VolumeFolder(FOLDER), heartbeat_s=0.1).acquire()
    first = _holder()["heartbeat"]
    deadline = time.time() + 10
    while _holder()["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.05)
    assert _holder()["heartbeat"] > first
    creates = [r for r in workspace.requests("PUT") if r[1].endswith(LOCK_NAME)]
    assert creates[0][2] == 204 and len(creates) >= 2  # the create, then heartbeats
    _put_record(host="someone-else")
    while not held._heartbeat.lost and time.time() < deadline:
        time.sleep(0.05)
    assert held._heartbeat.lost
    held.release()
    assert _holder()["host"] == "someone-else"


def test_waiting_for_a_volume_lock(workspace):
    first = RemoteLock(VolumeFolder(FOLDER)).acquire()
    timer = threading.Timer(0.5, first.release)
    timer.start()
    with VolumeFolder(FOLDER).lock(wait_s=15):
        assert _holder()["token"] != first._record["token"]
    timer.join()
