"""Two nightly runs on one living suite at the same time (a laptop and the job): no false "edited
by a person" conflicts, no lost history entry, no lost traces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tracefactory import add_support_traces

from trace2eval.sessions import suite


def nightly_session(store, suite_dir: Path, out: Path, session_id: str):
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    config = config.model_copy(update={"suite_dir": str(suite_dir)})
    return runner.create_session(config, out, session_id=session_id)


def _suite_state(suite_dir: Path, name: str):
    return json.loads((suite_dir / "state" / name).read_text())


@pytest.mark.slow
def test_two_runs_interleaved_publish_once_and_lose_nothing(store, tmp_path):
    from trace2eval.sessions import runner

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    add_support_traces(store, 0, 6)
    assert runner.run_all(nightly_session(store, suite_dir, out, "401"))

    # Both runs copy the suite before either publishes; the second one also sees three later traces.
    add_support_traces(store, 100, 4)
    first = nightly_session(store, suite_dir, out, "402")
    runner.run_task(first, "initializer")
    add_support_traces(store, 200, 3)
    second = nightly_session(store, suite_dir, out, "403")
    runner.run_task(second, "initializer")
    assert second.plan().task("initializer").summary["new_traces"] == 7

    assert runner.run_all(first)
    published = {p.relative_to(suite_dir).as_posix(): p.read_bytes() for p in suite_dir.rglob("*") if p.is_file()}
    assert runner.run_all(second)  # validates, but does not publish over the newer suite
    after = {p.relative_to(suite_dir).as_posix(): p.read_bytes() for p in suite_dir.rglob("*") if p.is_file()}

    assert _suite_state(suite_dir, "generated_files.json")["conflicts"] == []  # nobody edited anything
    assert not [rel for rel in after if rel.endswith(".new")]
    history = _suite_state(suite_dir, "runs.json")
    assert [r["session"] for r in history] == ["401", "402", "403"]  # every run is in the history
    assert history[1]["published"] is True and history[2]["published"] is False
    assert history[2]["superseded_by"] == ["402"] and history[2]["validation_status"] == "passed"
    changed = {rel for rel in after if after[rel] != published.get(rel)}
    assert changed == {"state/runs.json"}  # the first run's suite stands as it published it
    assert second.plan().task("validate").summary["published"]["deferred"] is True

    # The next night reads again what only the deferred run had seen.
    third = nightly_session(store, suite_dir, out, "404")
    assert runner.run_all(third)
    assert third.plan().task("initializer").summary["new_traces"] == 3
    history = _suite_state(suite_dir, "runs.json")
    assert [r["session"] for r in history] == ["401", "402", "403", "404"] and history[3]["published"] is True
    mark = _suite_state(suite_dir, "watermark.json")
    assert mark["runs"] == 3 and mark["traces_total"] == 6 + 4 + 3


PUBLISHER = textwrap.dedent("""
    import sys, time
    from trace2eval.sessions import suite
    from trace2eval.sessions.session import Session
    session = Session.open(sys.argv[1])
    go = float(sys.argv[2])
    time.sleep(max(0.0, go - time.time()))
    print(suite.publish(session))
""")


@pytest.mark.slow
def test_two_processes_publishing_at_once_keep_both_history_entries(store, tmp_path):
    """Real processes racing for the suite lock at the same instant: one publishes, one defers."""
    import time

    from trace2eval.sessions import runner

    suite_dir, out = tmp_path / "suite", tmp_path / "sessions"
    add_support_traces(store, 0, 6)
    assert runner.run_all(nightly_session(store, suite_dir, out, "501"))
    add_support_traces(store, 100, 4)
    sessions = [nightly_session(store, suite_dir, out, sid) for sid in ("502", "503")]
    for session in sessions:  # both copied the suite, both validated; neither has published yet
        for task in ("initializer", "dataset", "scorers", "script"):
            runner.run_task(session, task)
    go = time.time() + 6
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(suite.__file__).parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(s.dir), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sessions
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    history = _suite_state(suite_dir, "runs.json")
    assert [r["session"] for r in history][0] == "501" and sorted(r["session"] for r in history[1:]) == ["502", "503"]
    assert sorted(r["published"] for r in history[1:]) == [False, True]
    assert _suite_state(suite_dir, "generated_files.json")["conflicts"] == []
    assert not list(suite_dir.rglob("*.new")) and not (suite_dir / ".trace2eval.lock").exists()
