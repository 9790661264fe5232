"""A run killed while it writes the report is finished by `resume` (or by the retried last task):
the report is written and the generation run ends instead of staying RUNNING forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sessioncopy import copy_session
from trace2eval.report.generation_run import KIND_TAG, SESSION_TAG
from trace2eval.report.publish import is_complete
from trace2eval.sessions import runner

# Runs the session's last task in a child process that stops for good at the report step (the
# moment a `kill -9` or a dead driver would hit), after announcing it on stdout.
CHILD = textwrap.dedent("""
    import importlib, sys, time
    from trace2eval.sessions import runner
    publish = importlib.import_module("trace2eval.report.publish")  # the module (the package exports the function)
    from trace2eval.sessions.session import Session

    def stuck_in_the_report(*args, **kwargs):
        print("WRITING-REPORT", flush=True)
        time.sleep(600)

    publish.write_report = stuck_in_the_report
    runner.run_task(Session.open(sys.argv[1]), sys.argv[2], force=True)
""")


def _generation_run(session):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=session.config().tracking_uri)
    (run,) = client.search_runs(
        [session.config().experiment_id],
        filter_string=f"tags.`{SESSION_TAG}` = '{session.id}' AND tags.`{KIND_TAG}` = 'generation'",
    )
    return run


def _fresh_copy(demo_session, demo_store, tmp_path, name):
    """A finished demo session under a new id (so it has no generation run yet) and no report."""
    session = copy_session(demo_session, demo_store["folder"], tmp_path, name=name)
    for leftover in ("report.html", "report.md", "state/mlflow_publish.json"):
        (session.dir / leftover).unlink(missing_ok=True)
    return session


def _kill_at_the_report(session, task: str) -> None:
    src = Path(runner.__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(session.dir), task],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "WRITING-REPORT", child.stderr.read()[-3000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.mark.slow
def test_kill_9_while_writing_the_report_then_resume_finishes_it(demo_session, demo_store, tmp_path, capsys):
    session = _fresh_copy(demo_session, demo_store, tmp_path, "2031-01-01_000000")
    _kill_at_the_report(session, "validate")

    # Exactly what the crash leaves: every task done, the generation run RUNNING, no report.
    assert session.plan().finished and not (session.dir / "report.html").exists()
    assert _generation_run(session).info.status == "RUNNING"
    assert not is_complete(session)
    assert (session.dir / ".trace2eval.lock").exists()  # the killed process could not release it

    assert runner.resume(session) is True
    err = capsys.readouterr().err
    assert "the report was not finished (interrupted); finishing it" in err and "already finished" not in err
    assert "Taking over the lock" in err and "is gone" in err  # the dead holder's lock, at once
    run = _generation_run(session)
    assert run.info.status == "FINISHED"
    assert run.info.run_id in (session.dir / "report.html").read_text()
    assert is_complete(session) and not (session.dir / ".trace2eval.lock").exists()

    assert runner.resume(session) is True
    assert "already finished; nothing to do" in capsys.readouterr().err


def test_a_retried_last_task_finishes_an_interrupted_report(demo_session, demo_store, tmp_path, capsys):
    """The state a crash at the report leaves, reached without one; the job retries its last task."""
    from mlflow import MlflowClient

    session = _fresh_copy(demo_session, demo_store, tmp_path, "2031-01-02_000000")
    runner._publish_when_done(session, failed=False)
    run_id = _generation_run(session).info.run_id
    state_file = session.state_dir / "mlflow_publish.json"
    state = json.loads(state_file.read_text())
    assert state["completed"]["plan"] and is_complete(session)
    del state["completed"]  # as if killed before the end: the run still RUNNING, no report
    state_file.write_text(json.dumps(state))
    MlflowClient(tracking_uri=session.config().tracking_uri).update_run(run_id, "RUNNING")
    (session.dir / "report.html").unlink()
    capsys.readouterr()

    last = session.plan().tasks[-1]
    assert runner.run_task(session, last.name) == last.status  # not rerun: only the publishing is finished
    assert "finishing the report and the MLflow run it left unfinished" in capsys.readouterr().err
    assert _generation_run(session).info.status == "FINISHED" and (session.dir / "report.html").exists()
    assert is_complete(session) and session.plan().task(last.name).attempts == last.attempts


def test_a_task_run_after_publishing_makes_the_session_unpublished_again(session_copy):
    runner._publish_when_done(session_copy, failed=False)
    assert is_complete(session_copy)
    plan = session_copy.plan()
    plan.task("validate").attempts += 1  # what running (or forcing) a task does to the plan
    session_copy.save_plan(plan)
    assert not is_complete(session_copy)
