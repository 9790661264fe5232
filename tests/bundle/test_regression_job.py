"""The bundle's regression job (resources/trace2eval_regression.job.yml): valid for Databricks, one
thin notebook, and, run locally on sqlite with the living suite in a local Volume folder, it
succeeds for an unchanged candidate and fails the run (alerting) for a regressed one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_bundle_files import schema_errors, schema_validator  # noqa: F401  (a fixture, shared)
import yaml

from trace2eval.bundle import definition, notebooks
from trace2eval.bundle.graph import leaves
from trace2eval.bundle.job_tasks import REGRESSION_JOB_PARAMETERS, TASK_PARAMETERS, JobParameterError, run_regression

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"experiment_id": "123", "volume_path": "/Volumes/main/evals/trace2eval"}
JOB_FILE = ROOT / "resources" / "trace2eval_regression.job.yml"


def regression(target: str = "dev", **extra) -> dict:
    return definition.load(ROOT, target, {**REQUIRED, **extra}).job("trace2eval_regression")[1]


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_job_matches_the_typed_model_of_databricks_bundles(target):
    from databricks.bundles.jobs import Job

    extra = {"service_principal": "6a8e2f00-0000-4000-8000-000000000001"} if target == "prod" else {}
    job = Job.from_dict(regression(target, **extra))
    assert [t.task_key for t in job.tasks] == ["regression"]
    with pytest.raises(ValueError, match="Unexpected field"):
        Job.from_dict({**regression(target, **extra), "schedulee": {}})


def test_job_file_matches_the_official_schema(schema_validator):  # noqa: F811  (the imported fixture)
    assert schema_errors(schema_validator, yaml.safe_load(JOB_FILE.read_text())) == []


def test_one_thin_notebook_whose_failure_fails_the_run_and_alerts():
    job = regression("dev", alert_emails=["oncall@example.com"])
    assert leaves(job) == ["regression"] and "schedule" not in job  # by hand or from CI, never on a timer
    assert job["email_notifications"]["on_failure"] == ["oncall@example.com"]
    assert [p["name"] for p in job["parameters"]] == list(REGRESSION_JOB_PARAMETERS)
    (task,) = job["tasks"]
    assert set(task["notebook_task"]["base_parameters"]) == set(TASK_PARAMETERS) and task["max_retries"] == 0
    path = Path(task["notebook_task"]["notebook_path"])
    assert path == ROOT / "notebooks" / "regression.py"
    notebooks.to_notebook(path)
    assert notebooks.thinness_problems(path) == []
    assert "run_regression(params, dbutils)" in "\n".join(notebooks.code_cells(path))


def test_an_empty_agent_parameter_is_a_clear_error():
    with pytest.raises(JobParameterError, match="agent"):
        run_regression({"agent": " ", "experiment_id": "1", "volume": "/tmp/x"})


@pytest.mark.slow
def test_run_local_passes_an_unchanged_candidate_and_fails_a_regressed_one(cli, tmp_path):
    from candidate_suite import CANDIDATE, make_suite

    session, store = make_suite(tmp_path)
    shutil.copytree(session.evaluation_dir, tmp_path / "vol" / "suite" / "evaluation")

    def run(run_id: str, agent: str):
        code, out, err = cli(
            "job", "run-local", "--job", "trace2eval_regression", "--bundle-root", ROOT, "--run-id", run_id,
            "--runs-dir", tmp_path / "runs", "--var", f"experiment_id={store.experiment_id}",
            "--var", f"volume_path={tmp_path / 'vol'}", "--var", 'alert_emails=["oncall@example.com"]',
            "--param", f"tracking_uri={store.uri}", "--param", f"agent={agent}",
        )  # fmt: skip
        record = json.loads((tmp_path / "runs" / "trace2eval_regression" / run_id / "run.json").read_text())
        return code, out + err, record

    code, out, record = run("r1", f"{CANDIDATE}:unchanged")
    assert code == 0, out[-3000:]
    assert record["result_state"] == "SUCCESS"
    assert record["tasks"]["regression"]["values"]["status"] == "passed"

    code, out, record = run("r2", f"{CANDIDATE}:regressed")
    assert code != 0 and record["result_state"] == "FAILED"
    assert "regression in tool_failures" in out
    assert [n["event"] for n in record["notifications"]] == ["on_failure"]
