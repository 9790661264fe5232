"""Whole runs on real MLflow stores: the demo, hostile traces, a crash and resume, the fix loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trace2eval.sessions.session import Session

pytestmark = pytest.mark.slow

SECRET = "dapi" + "0123456789abcdef" * 2  # fake; split so secret scanners stay quiet


def trace2eval(*args, cwd=None, timeout=600, **kw):
    return subprocess.run(
        [sys.executable, "-m", "trace2eval", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        **kw,
    )


def run_eval(evaluation_dir: Path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return subprocess.run(
        [sys.executable, "run_eval.py", *args], cwd=evaluation_dir, capture_output=True, text=True, timeout=600, env=env
    )


def test_demo_end_to_end_and_regression_gate(tmp_path):
    proc = trace2eval("demo", "--out", tmp_path / "demo", "--traces", "30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    session = Session.open(proc.stdout.strip().splitlines()[-1])
    for name in (
        "eval_tasks.json",
        "state/analysis.json",
        "state/validation_results.json",
        "evaluation/eval_dataset.py",
        "evaluation/scorers.py",
        "evaluation/run_eval.py",
    ):
        assert (session.dir / name).exists(), name
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stderr
    validation = session.validation().model_dump()
    assert validation["validation_status"] == "passed" and validation["run_id"]
    assert all(validation["validation_checks"][k] for k in ("script_executes", "metrics_logged", "no_nan_scores"))
    assert all(t.status in ("completed", "skipped") for t in session.plan().tasks)

    # The generated script runs from its own folder, logs a run, and passes its gates.
    again = run_eval(session.evaluation_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Quality gates passed" in again.stdout and "Run ID:" in again.stdout

    # A person tightens a gate above what the agent achieves: the script now fails, with a table.
    gates_file = session.evaluation_dir / "eval_gates.json"
    gates = json.loads(gates_file.read_text())
    metric = sorted(k for k, v in gates["gates"].items() if v < 0.9)[0]
    gates["gates"][metric] = 1.0
    gates_file.write_text(json.dumps(gates))
    regressed = run_eval(session.evaluation_dir)
    assert regressed.returncode == 1
    assert "Quality gate FAILED" in regressed.stdout and metric in regressed.stdout
    accepted = run_eval(session.evaluation_dir, "--update-gates")
    assert accepted.returncode == 0 and "Gates updated" in accepted.stdout

    # Code scorers work on ANY trace of the experiment, straight from search_traces.
    code = (
        "import sys, mlflow; sys.path.insert(0, '.'); from scorers import get_code_scorers;"
        f"mlflow.set_tracking_uri({session.config().tracking_uri!r});"
        f"mlflow.set_experiment(experiment_id={session.config().experiment_id!r});"
        f"df = mlflow.search_traces(locations=[{session.config().experiment_id!r}]);"
        # The demo's candidate versions left their traces in the experiment, tagged as such.
        "candidate = [bool((t or {}).get('trace2eval.candidate')) for t in df['tags']];"
        "assert sum(candidate) > 0, 'candidate traces are tagged';"
        "df = df[[not c for c in candidate]];"
        "r = mlflow.genai.evaluate(data=df, scorers=get_code_scorers());"
        "errs = [c for c in r.result_df.columns if c.endswith('/error_message') and r.result_df[c].notna().any()];"
        "print(len(df), sorted(r.metrics), errs)"
    )
    anytrace = subprocess.run(
        [sys.executable, "-c", code], cwd=session.evaluation_dir, capture_output=True, text=True, timeout=600
    )
    assert anytrace.returncode == 0, anytrace.stderr[-2000:]
    last = anytrace.stdout.strip().splitlines()[-1]
    assert last.startswith("30 ") and "/mean" in last and last.endswith("[]")


def test_hostile_traces_stay_data_and_secrets_never_land(store, tmp_path):
    marker = tmp_path / "PWNED"
    evil = f'"""\n__import__("os").system("touch {marker}")\n"""'
    for i in range(6):
        store.add(
            f"normal question {i} about orders", f"normal answer {i}.", tools=[{"name": "get_order", "args": {"id": i}}]
        )
    store.add(
        evil,
        evil + f"\nuse key {SECRET} and Bearer abcdefghijklmnopqrstuvwxyz0123",
        tools=[{"name": "lookup", "args": {"q": evil}}],
    )
    store.add("show the export", "z" * 2_000_000, tools=[{"name": "export", "args": {}, "output": "z" * 2_000_000}])
    store.add("crash please", None, status="ERROR", exception=("ValueError", f"bad token {SECRET}"))
    store.add({"messages": [{"role": "user", "content": f"my token is {SECRET}"}]}, "I can't use tokens, sorry.")
    proc = trace2eval("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "sessions")
    assert proc.returncode == 0, proc.stderr[-3000:]
    session_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert not marker.exists()
    total = 0
    for path in session_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert SECRET not in text, path
            assert "abcdefghijklmnopqrstuvwxyz0123" not in text, path
            total += path.stat().st_size
    assert total < 1_500_000, f"session is {total} bytes"
    assert not marker.exists()


def test_killed_run_resumes_without_redoing_finished_tasks(demo_store, tmp_path):
    out = tmp_path / "sessions"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            demo_store["experiment_id"],
            "--tracking-uri",
            demo_store["uri"],
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    session_dir = None
    while time.time() < deadline:
        found = list(out.glob("*/eval_tasks.json"))
        if found:
            plan = json.loads(found[0].read_text())
            if plan["tasks"][4]["status"] == "running":  # validate is running: kill mid-task
                session_dir = found[0].parent
                break
        time.sleep(0.05)
    assert session_dir is not None, "never reached the validate task"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    plan = json.loads((session_dir / "eval_tasks.json").read_text())
    assert [t["status"] for t in plan["tasks"]] == ["completed"] * 4 + ["running", "pending"]

    resumed = trace2eval("resume", session_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    plan = json.loads((session_dir / "eval_tasks.json").read_text())
    attempts = {t["name"]: t["attempts"] for t in plan["tasks"]}
    assert attempts == {"initializer": 1, "dataset": 1, "scorers": 1, "script": 1, "validate": 2, "fix": 0}
    assert plan["tasks"][4]["status"] == "completed" and plan["tasks"][5]["status"] == "skipped"


def test_fix_drops_a_scorer_that_errors_and_revalidates(demo_store, tmp_path, cli):
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner
    from trace2eval.state.specs import load_specs, save_specs, write_scorers
    from trace2eval.generate.scorers import ScorerSpec

    config = SessionConfig.from_inputs(demo_store["experiment_id"], demo_store["uri"])
    session = runner.create_session(config, tmp_path)
    for name in ("initializer", "dataset", "scorers"):
        runner.run_task(session, name)
    # An LLM-written scorer that crashes on real rows (it passed review, then failed at runtime).
    specs, dropped = load_specs(session)
    broken = ScorerSpec(
        name="broken_llm_scorer",
        implementation="rule",
        check="conversation_length",
        params={},  # params lost
        source="llm",
        doc="crashes",
    )
    save_specs(session, specs + [broken], dropped)
    write_scorers(session, specs + [broken], None)
    assert runner.run_all(session)
    validation = session.validation().model_dump()
    assert validation["validation_status"] == "passed" and validation["details"]["attempt"] == 1
    assert validation["details"]["by"] == "fix"
    _, dropped = load_specs(session)
    assert dropped[0]["name"] == "broken_llm_scorer" and "scorer_error" in dropped[0]["reason"]
    assert "broken_llm_scorer" not in (session.evaluation_dir / "scorers.py").read_text()
    fix = session.plan().task("fix")
    assert fix.status == "completed" and fix.summary["attempts"] == 1


def test_fix_gives_up_after_bounded_attempts(demo_store, tmp_path, cli):
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(demo_store["experiment_id"], demo_store["uri"], max_fix_attempts=2)
    session = runner.create_session(config, tmp_path)
    for name in ("initializer", "dataset", "scorers", "script"):
        runner.run_task(session, name)
    # The tracking store disappears: no repair can make the evaluation run.
    Path(demo_store["uri"][len("sqlite:///") :]).rename(tmp_path / "moved.db")
    try:
        code, out, err = cli("resume", session.dir)
    finally:
        (tmp_path / "moved.db").rename(demo_store["uri"][len("sqlite:///") :])
    assert code == 1
    assert "Error: validation still fails after" in err or "Error:" in err
    fix = session.plan().task("fix")
    assert fix.status == "failed" and fix.error
