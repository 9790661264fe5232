import json
import os
import subprocess
import sys

import pytest

from trace2eval.errors import SessionError
from trace2eval.sessions.files import RUN_NOTES, add_run_note, drop_run_note, read_json, run_notes, write_json
from trace2eval.sessions.lock import SessionLock


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "state" / "a.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    assert oct(target.stat().st_mode & 0o777) != "0o600"


def test_corrupt_state_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SessionError, match="not valid JSON"):
        read_json(tmp_path / "x.json")
    with pytest.raises(SessionError, match="missing"):
        read_json(tmp_path / "nope.json")


def test_run_notes_keep_one_note_per_topic_and_read_notes_named_by_kind(tmp_path):
    # What earlier versions wrote: the topic under `kind`.
    write_json(tmp_path / RUN_NOTES, [{"kind": "shed_rows", "text": "Shed 3 rows.", "traces": ["t1"]}])
    assert run_notes(tmp_path) == [{"topic": "shed_rows", "text": "Shed 3 rows.", "traces": ["t1"]}]
    add_run_note(tmp_path, "watermark_clamped", "Watermark: clamped.")
    add_run_note(tmp_path, "shed_rows", "Shed 4 rows.", traces=["t2"])  # replaces the old note of that topic
    assert read_json(tmp_path / RUN_NOTES) == [
        {"topic": "watermark_clamped", "text": "Watermark: clamped."},
        {"topic": "shed_rows", "text": "Shed 4 rows.", "traces": ["t2"]},
    ]
    drop_run_note(tmp_path, "watermark_clamped")
    assert [n["topic"] for n in run_notes(tmp_path)] == ["shed_rows"]


def test_second_runner_is_refused_while_first_holds_the_lock(tmp_path):
    with SessionLock(tmp_path):
        with pytest.raises(SessionError, match="in use by pid"):
            SessionLock(tmp_path).acquire()
    with SessionLock(tmp_path):  # released: free again
        pass


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    import socket
    import time

    (tmp_path / ".trace2eval.lock").write_text(
        json.dumps({"host": socket.gethostname(), "pid": dead_pid, "since": time.time()})
    )
    with SessionLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
