"""The generated run_eval.py, run as a user runs it (`python run_eval.py` in its folder) against a
real sqlite store: nothing fails silently, judges are checked before the evaluation and gated once
they ran, and a deleted source trace does not fail every row."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judge_server import JudgeServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One small suite generated offline (no judge model), and the store it came from."""
    from tracefactory import TraceStore, add_support_traces
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    folder = tmp_path_factory.mktemp("run-eval-store")
    store = TraceStore(folder / "mlflow.db")
    add_support_traces(store, 0, 12)
    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    session = runner.create_session(config, folder / "sessions")
    assert runner.run_all(session)
    return {"folder": folder, "session": session, "experiment_id": store.experiment_id}


@pytest.fixture
def suite(generated, tmp_path):
    """A private copy of the suite and its store: (evaluation folder, tracking uri, experiment id)."""
    shutil.copy(generated["folder"] / "mlflow.db", tmp_path / "mlflow.db")
    evaluation = tmp_path / "evaluation"
    shutil.copytree(generated["session"].evaluation_dir, evaluation, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    return evaluation, f"sqlite:///{tmp_path / 'mlflow.db'}", generated["experiment_id"]


def clean_env(**extra):
    """The test's environment without any tracking store or judge credentials of the machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("MLFLOW_TRACKING", "MLFLOW_EXPERIMENT", "DATABRICKS_", "OPENAI_", "ANTHROPIC_", "TRACE2EVAL_")
        )
    }
    env.update(extra)
    return env


def run_eval(suite, *args, env=None, timeout=300):
    evaluation, uri, experiment_id = suite
    results = evaluation / "results.json"
    results.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "run_eval.py",
            "--tracking-uri",
            uri,
            "--experiment-id",
            experiment_id,
            "--results-json",
            str(results),
            *args,
        ],
        cwd=evaluation,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
    )
    proc.seconds = time.monotonic() - start
    proc.results = json.loads(results.read_text()) if results.exists() else {}
    return proc


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def judge_names(evaluation: Path) -> list[str]:
    return [g.split("/")[0] for g in json.loads((evaluation / "eval_gates.json").read_text())["gates"]]


def test_unreachable_judge_host_fails_fast_naming_the_judge(suite):
    env = clean_env(
        DATABRICKS_HOST=f"http://127.0.0.1:{dead_port()}",
        DATABRICKS_TOKEN="dapi" + "0" * 32,
        TRACE2EVAL_JUDGE_TIMEOUT="8",
    )
    broken = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
    # The SDK retries an unreachable host for 5 minutes; the judge check gives up after 8 s.
    assert broken.returncode == 2, broken.stdout[-2000:] + broken.stderr[-2000:]
    assert broken.seconds < 90
    assert (
        "Error: judge '" in broken.stderr
        and "(databricks:/some-endpoint) did not work on the first row" in broken.stderr
    )
    assert (
        "no answer within 8 s" in broken.stderr
        and "DATABRICKS_HOST" in broken.stderr
        and "--no-judges" in broken.stderr
    )
    assert "Quality gates passed" not in broken.stdout and "Evaluating" not in broken.stdout
    assert broken.results["error"]["kind"] == "judge_unavailable" and broken.results["run_id"] is None

    skipped = run_eval(suite, "--judge-model", "databricks:/some-endpoint", "--no-judges", env=env)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "LLM judges not run: --no-judges" in skipped.stdout and "Quality gates passed" in skipped.stdout


def test_missing_judge_credentials_fail_before_evaluating(suite, tmp_path):
    env = clean_env(HOME=str(tmp_path))  # no DATABRICKS_* and no ~/.databrickscfg
    broken = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
    assert broken.returncode == 2
    assert "did not work on the first row" in broken.stderr and "credentials" in broken.stderr
    assert broken.seconds < 60 and "Evaluating" not in broken.stdout


def test_judges_that_error_on_every_row_fail_the_run(suite):
    server = JudgeServer(lambda n: "yes" if n == 0 else 403)  # the check passes, then the token is refused
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "1" * 32)
        broken = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
    finally:
        server.close()
    assert broken.returncode == 2, broken.stdout[-2000:] + broken.stderr[-2000:]
    assert "Quality gates passed" not in broken.stdout
    failures = {f["scorer"]: f for f in broken.results["scorer_failures"]}
    assert failures and all(f["values"] == 0 for f in failures.values())
    for name in failures:
        assert f"judge '{name}' (databricks:/some-endpoint): 0 of" in broken.stderr
    assert "PERMISSION_DENIED" in broken.stderr and "--no-judges" in broken.stderr
    assert broken.results["run_id"]  # the run happened: it is the values that are missing


def test_judge_gates_are_added_then_required(suite):
    evaluation = suite[0]
    code_gates = judge_names(evaluation)
    server = JudgeServer(lambda n: "yes")
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "2" * 32)
        first = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        assert "New gates from this run (checked from the next run on)" in first.stdout
        spec = json.loads((evaluation / "eval_gates.json").read_text())
        judges = spec["judges"]
        assert judges and all(f"{j}/mean" in spec["gates"] for j in judges)
        assert set(code_gates) <= set(judge_names(evaluation))

        second = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
        assert second.returncode == 0 and "New gates" not in second.stdout
        checked = {g["metric"]: g["verdict"] for g in second.results["gates"]}
        assert all(checked[f"{j}/mean"] == "ok" for j in judges)

        # A gate a person deleted stays deleted.
        edited = json.loads((evaluation / "eval_gates.json").read_text())
        del edited["gates"][f"{judges[0]}/mean"]
        (evaluation / "eval_gates.json").write_text(json.dumps(edited))
        third = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
        assert third.returncode == 0 and "New gates" not in third.stdout
        assert f"{judges[0]}/mean" not in json.loads((evaluation / "eval_gates.json").read_text())["gates"]
        judges = judges[1:]

        # The judges now say no to everything: their gates regress (exit 1), not "not run".
        server.answers = lambda n: "no" if n else "yes"
        worse = run_eval(suite, "--judge-model", "databricks:/some-endpoint", env=env)
        assert worse.returncode == 1, worse.stdout[-2000:]
        assert {r[0] for r in worse.results["regressions"]} >= {f"{j}/mean" for j in judges}
    finally:
        server.close()

    # A CI job that lost its judge model does not pass on the code scorers alone...
    lost = run_eval(suite)
    assert lost.returncode == 2 and "gates LLM judges" in lost.stderr and "--no-judges" in lost.stderr
    assert lost.results["error"]["kind"] == "judge_model_missing"
    # ...unless it says so.
    explicit = run_eval(suite, "--no-judges")
    assert explicit.returncode == 0, explicit.stdout[-2000:]
    line = next(l for l in explicit.stdout.splitlines() if l.startswith(f"{judges[0]}/mean"))
    assert line.endswith("not run (--no-judges)")


def test_a_scorer_without_values_fails_the_run_and_no_gates_are_written(suite):
    evaluation = suite[0]
    (evaluation / "eval_gates.json").unlink()
    scorers = evaluation / "scorers.py"
    scorers.write_text(
        scorers.read_text()
        + """

_generated_code_scorers = get_code_scorers


@scorer(name="needs_field")
def needs_field(outputs):
    return outputs["field_that_does_not_exist"] == 1


def get_code_scorers():
    return _generated_code_scorers() + [needs_field]
"""
    )
    broken = run_eval(suite)
    assert broken.returncode == 2, broken.stdout[-2000:] + broken.stderr[-2000:]
    rows = broken.results["rows"]
    assert f"scorer 'needs_field': 0 of {rows} rows; first error: 'field_that_does_not_exist'" in broken.stderr
    assert "Code scorers: fix or remove them in scorers.py" in broken.stderr
    assert "Gates not written: a baseline only comes from a run where every scorer produced values" in broken.stdout
    assert not (evaluation / "eval_gates.json").exists()
    assert [f["scorer"] for f in broken.results["scorer_failures"]] == ["needs_field"]


def test_deleted_source_traces_are_evaluated_from_stored_rows(suite):
    from mlflow import MlflowClient

    evaluation, uri, experiment_id = suite
    rows = json.loads((evaluation / "eval_dataset.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    sources = [r["metadata"]["source_trace"] for r in rows]
    client = MlflowClient(uri)
    client.delete_traces(experiment_id=experiment_id, trace_ids=sources[:1])
    assert client.get_trace(sources[1]) is not None

    first = run_eval(suite)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "'float' object has no attribute 'data'" not in first.stderr
    assert "Note: 1 row(s) have a source trace that no longer exists" in first.stdout and sources[0] in first.stdout
    assert first.results["rows"] == len(rows) and first.results["rows_with_trace"] == len(rows) - 1
    assert first.results["missing_source_traces"] == sources[:1]
    assert all(c["values"] == len(rows) and not c["errors"] for c in first.results["scorers"].values())

    def stand_ins():
        return client.search_traces(locations=[experiment_id], filter_string="tags.`trace2eval.stand_in_for` LIKE '%'")

    assert [t.info.tags["trace2eval.stand_in_for"] for t in stand_ins()] == sources[:1]
    again = run_eval(suite)
    assert again.returncode == 0 and len(stand_ins()) == 1  # reused, not one more per night

    # Every source trace gone: the rows are evaluated from their stored inputs and outputs.
    client.delete_traces(experiment_id=experiment_id, trace_ids=sources[1:])
    gone = run_eval(suite, "--no-gate")
    assert gone.returncode == 0, gone.stdout[-2000:] + gone.stderr[-2000:]
    assert gone.results["rows"] == len(rows) and gone.results["rows_with_trace"] == 0
    assert f"Note: {len(rows)} row(s) have a source trace that no longer exists" in gone.stdout


def test_help_says_how_judges_and_gates_behave(suite):
    proc = subprocess.run(
        [sys.executable, "run_eval.py", "--help"],
        cwd=suite[0],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 0
    for phrase in (
        "--no-judges",
        "checked from the next run on",
        "--judge-timeout",
        "deleted by retention",
        "Exit codes",
    ):
        assert phrase in proc.stdout
