"""`trace2eval job run-local`: the committed bundle's job, end to end on sqlite, every notebook in
its own process. The nightly path, the fix branch, and a failing run whose failure is exactly what
Databricks' on_failure alerts would see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tracefactory import add_support_traces

from trace2eval.bundle.graph import EXCLUDED, FAILED, SUCCESS, UPSTREAM_FAILED
from trace2eval.generate.scorers import ScorerSpec, render_scorers
from trace2eval.sessions import monitor as monitors
from trace2eval.sessions import ownership
from trace2eval.state.specs import load_specs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run_local(cli, tmp_path, store, run_id: str, *variables: str):
    return cli(
        "job",
        "run-local",
        "--bundle-root",
        ROOT,
        "--run-id",
        run_id,
        "--runs-dir",
        tmp_path / "runs",
        "--var",
        f"experiment_id={store.experiment_id}",
        "--var",
        f"volume_path={tmp_path / 'vol'}",
        "--var",
        'alert_emails=["oncall@example.com"]',
        "--var",
        'failure_webhooks=[{"id": "dest-1"}]',
        "--var",
        "since=",  # the hand-made traces are dated early 2026: read them all on the first night
        "--param",
        f"tracking_uri={store.uri}",
        *[arg for variable in variables for arg in ("--var", variable)],
    )


def record(tmp_path, run_id: str) -> dict:
    return json.loads((tmp_path / "runs" / "trace2eval_nightly" / run_id / "run.json").read_text())


def states(run: dict) -> dict[str, str]:
    return {k: t["state"] for k, t in run["tasks"].items()}


def test_nightly_job_then_a_second_night_with_new_traces(cli, store, tmp_path):
    first_ids = add_support_traces(store, 0, 9)
    code, out, err = run_local(cli, tmp_path, store, "1001")
    assert code == 0, err[-3000:]
    session = tmp_path / "vol" / "sessions" / "1001"
    assert out.strip().splitlines()[-1] == str(session)
    run = record(tmp_path, "1001")
    assert run["result_state"] == SUCCESS
    assert states(run) == {
        "initializer": SUCCESS,
        "dataset": SUCCESS,
        "scorers": SUCCESS,
        "script": SUCCESS,
        "validate": SUCCESS,
        "needs_fix": SUCCESS,
        "fix": EXCLUDED,
        "monitor": SUCCESS,  # runs after an excluded fix: the suite was published by validate
    }
    assert run["tasks"]["needs_fix"]["outcome"] == "false"
    # monitor_sample_rate is 0 by default: the step says so and registers nothing.
    assert run["tasks"]["monitor"]["values"]["status"] == "skipped"
    assert "monitor_sample_rate is 0" in run["tasks"]["monitor"]["values"]["reason"]
    assert run["tasks"]["validate"]["values"]["validation_status"] == "passed"
    assert run["tasks"]["initializer"]["values"]["new_traces"] == 9
    assert not [n for n in run["notifications"] if n["event"] == "on_failure"]
    suite = tmp_path / "vol" / "suite"
    assert (suite / "evaluation" / "run_eval.py").exists() and (suite / "SUITE.md").exists()
    assert json.loads((session / "eval_tasks.json").read_text())["tasks"][0]["status"] == "completed"

    # The next night: new traces arrived, and a person edited scorers.py in the suite meanwhile.
    scorers = suite / "evaluation" / "scorers.py"
    scorers.write_text(scorers.read_text() + "\n# reviewed by the agent team\n")
    edited = scorers.read_text()
    new_ids = add_support_traces(store, 200, 4)
    assert not monitors.registered(monitors.resolve(suite, store.uri))
    # This night the monitors are on: after the validated publish the suite's scorers get registered.
    code, out, err = run_local(cli, tmp_path, store, "1002", "monitor_sample_rate=0.5")
    assert code == 0, err[-3000:]
    run = record(tmp_path, "1002")
    assert run["result_state"] == SUCCESS
    monitor = run["tasks"]["monitor"]["values"]
    found = monitors.registered(monitors.resolve(suite, store.uri))
    assert monitor["status"] == "synced" and monitor["registered"] == len(found) > 0
    assert all(r.name.startswith(monitors.PREFIX) for r in found)
    # MLflow's open-source store registers code scorers but starts none: a warning, not a failed night.
    assert monitor["not_started"] == monitor["registered"] and monitor["running"] == 0
    assert "open-source tracking server starts only judges" in Path(run["tasks"]["monitor"]["log"]).read_text()
    assert run["tasks"]["initializer"]["values"]["new_traces"] == 4
    assert run["tasks"]["validate"]["values"]["conflicts"] == 1
    rows = json.loads((suite / "evaluation" / "eval_dataset.json").read_text())["rows"]
    by_run = {r["metadata"]["source_trace"]: r["metadata"].get("added_in") for r in rows}
    assert {t for t, added in by_run.items() if added == "1002"} <= set(new_ids)
    assert {t for t, added in by_run.items() if added == "1001"} <= set(first_ids)
    assert any(added == "1002" for added in by_run.values())
    assert scorers.read_text() == edited and (suite / "evaluation" / "scorers.py.new").exists()
    assert "Would notify" not in out


def test_fix_branch_repairs_a_broken_scorer_and_publishes(cli, store, tmp_path):
    add_support_traces(store, 0, 8)
    assert run_local(cli, tmp_path, store, "2001")[0] == 0
    # Last night an LLM session added a scorer that breaks on today's traces (trace2eval wrote the file).
    suite = tmp_path / "vol" / "suite"
    from trace2eval.sessions.session import Session

    specs, dropped = load_specs(Session(suite))
    broken = ScorerSpec(
        name="llm_refund_check",
        implementation="rule",
        check="conversation_length",
        params={},  # params lost
        source="llm",
        doc="checks refunds",
    )
    (suite / "state" / "scorer_specs.json").write_text(
        json.dumps({"scorers": [s.to_dict() for s in specs + [broken]], "dropped": dropped})
    )
    ownership.write_generated(suite, "evaluation/scorers.py", render_scorers(specs + [broken], None), "scorers")

    add_support_traces(store, 300, 3)
    code, out, err = run_local(cli, tmp_path, store, "2002")
    assert code == 0, err[-3000:]
    run = record(tmp_path, "2002")
    assert run["tasks"]["validate"]["values"]["validation_status"] == "failed"
    assert run["tasks"]["needs_fix"]["outcome"] == "true"
    assert run["tasks"]["fix"]["state"] == SUCCESS and run["tasks"]["fix"]["values"]["validation_status"] == "passed"
    assert run["result_state"] == SUCCESS
    published = json.loads((suite / "state" / "scorer_specs.json").read_text())
    assert "llm_refund_check" not in {s["name"] for s in published["scorers"]}
    assert published["dropped"][-1]["name"] == "llm_refund_check"
    assert "llm_refund_check" not in (suite / "evaluation" / "scorers.py").read_text()
    assert json.loads((suite / "state" / "watermark.json").read_text())["session"] == "2002"


def test_a_run_that_cannot_be_repaired_fails_and_alerts(cli, store, tmp_path):
    add_support_traces(store, 0, 8)
    assert run_local(cli, tmp_path, store, "3001")[0] == 0
    suite = tmp_path / "vol" / "suite"
    watermark = (suite / "state" / "watermark.json").read_text()
    scorers = suite / "evaluation" / "scorers.py"
    scorers.write_text(
        scorers.read_text().replace(
            "def get_code_scorers():", "def get_code_scorers():\n    raise RuntimeError('half-done edit')", 1
        )
    )

    add_support_traces(store, 400, 3)
    code, out, err = run_local(cli, tmp_path, store, "3002")
    assert code == 1
    last = err.strip().splitlines()[-1]
    # monitor is the leaf now: a failed fix makes it UPSTREAM_FAILED, and the error names the cause.
    assert last.startswith("Error: job run 3002 FAILED: leaf task monitor is UPSTREAM_FAILED because task fix FAILED")
    assert "evaluation/scorers.py was edited by a person" in last
    assert "(on_failure alerts: oncall@example.com, webhook dest-1)" in last
    assert "— see " in last and "fix.log" in last
    run = record(tmp_path, "3002")
    assert run["result_state"] == FAILED and run["leaves"] == ["monitor"]
    assert run["tasks"]["monitor"]["state"] == UPSTREAM_FAILED
    alerts = [n for n in run["notifications"] if n["event"] == "on_failure"]
    assert alerts == [
        {"event": "on_failure", "emails": ["oncall@example.com"], "webhooks": ["dest-1"], "source": "job"}
    ]
    assert "Would notify (on_failure, job): oncall@example.com, webhook dest-1" in out
    assert (suite / "state" / "watermark.json").read_text() == watermark  # the failed night is retried tomorrow
    assert "half-done edit" in scorers.read_text()
