"""The local task-graph runner follows Databricks' rules: order, run_if, if/else, task values,
retries, timeouts, and a run result decided by leaf tasks (which is what alerts see).

The notebooks here are tiny and real: each runs in its own process, like on a job cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trace2eval.bundle.definition import BundleError
from trace2eval.bundle.graph import (
    EXCLUDED,
    FAILED,
    SUCCESS,
    SUCCESS_WITH_FAILURES,
    TIMEDOUT,
    UPSTREAM_FAILED,
    GraphRunner,
)

HEADER = "# Databricks notebook source\n"


@pytest.fixture
def nb(tmp_path):
    """Write a notebook; returns its path."""
    folder = tmp_path / "notebooks"
    folder.mkdir()

    def write(name: str, *cells: str) -> str:
        path = folder / f"{name}.py"
        path.write_text(HEADER + "\n# COMMAND ----------\n".join(cells) + "\n")
        return str(path)

    return write


def task(key, notebook, deps=(), **extra):
    spec = {"task_key": key, "notebook_task": {"notebook_path": notebook, "base_parameters": extra.pop("params", {})}}
    if deps:
        spec["depends_on"] = [d if isinstance(d, dict) else {"task_key": d} for d in deps]
    spec.update(extra)
    return spec


def run(tmp_path, tasks, parameters=None, job_extra=None, overrides=None):
    job = {"name": "test job", "tasks": tasks, "parameters": parameters or [], **(job_extra or {})}
    return GraphRunner("job", job, "777", overrides, tmp_path / "record").run()


def states(result):
    return {k: t.state for k, t in result.tasks.items()}


def test_chain_passes_parameters_and_task_values(tmp_path, nb):
    produce = nb(
        "produce",
        "dbutils.jobs.taskValues.set(key='n', value=int(dbutils.widgets.get('n')) * 2)",
        "dbutils.jobs.taskValues.set(key='run', value=dbutils.widgets.get('run_id'))",
    )
    consume = nb(
        "consume",
        "assert dbutils.jobs.taskValues.get(taskKey='produce', key='n') == 42, 'wrong value'",
        "assert dbutils.widgets.get('from_param') == '21'",
    )
    result = run(
        tmp_path,
        [
            task("produce", produce, params={"run_id": "{{job.run_id}}"}),
            task("consume", consume, ["produce"], params={"from_param": "{{job.parameters.n}}"}),
        ],
        parameters=[{"name": "n", "default": "20"}],
        overrides={"n": "21"},
    )
    assert result.result_state == SUCCESS, result.tasks
    assert result.tasks["produce"].values == {"n": 42, "run": "777"}
    assert json.loads((tmp_path / "record" / "run.json").read_text())["result_state"] == SUCCESS


@pytest.mark.parametrize("status, taken, skipped", [("passed", "happy", "repair"), ("failed", "repair", "happy")])
def test_if_else_runs_one_branch_and_excludes_the_other(tmp_path, nb, status, taken, skipped):
    check = nb("check", f"dbutils.jobs.taskValues.set(key='status', value={status!r})")
    ok = nb("ok", "x = 1")
    result = run(
        tmp_path,
        [
            task("check", check),
            {
                "task_key": "cond",
                "depends_on": [{"task_key": "check"}],
                "condition_task": {"op": "EQUAL_TO", "left": "{{tasks.check.values.status}}", "right": "passed"},
            },
            task("happy", ok, [{"task_key": "cond", "outcome": "true"}]),
            task("repair", ok, [{"task_key": "cond", "outcome": "false"}]),
        ],
    )
    assert result.tasks[taken].state == SUCCESS and result.tasks[skipped].state == EXCLUDED
    assert result.result_state == SUCCESS  # an excluded leaf counts as success


def test_failed_leaf_fails_the_run_and_triggers_on_failure(tmp_path, nb):
    fine = nb("fine", "x = 1")
    boom = nb("boom", "raise RuntimeError('validation still fails after 3 attempts')")
    result = run(
        tmp_path,
        [task("first", fine), task("last", boom, ["first"])],
        job_extra={
            "email_notifications": {"on_failure": ["oncall@example.com"], "on_success": ["team@example.com"]},
            "webhook_notifications": {"on_failure": [{"id": "pager"}]},
        },
    )
    assert result.result_state == FAILED
    assert result.tasks["last"].error == "RuntimeError: validation still fails after 3 attempts"
    assert "Traceback" in Path(result.tasks["last"].log).read_text()
    events = {(n.event, tuple(n.emails), tuple(n.webhooks)) for n in result.notifications}
    assert events == {("on_failure", ("oncall@example.com",), ("pager",))}


def test_all_done_leaf_hides_a_failure_from_failure_alerts(tmp_path, nb):
    """Why the job has no ALL_DONE leaf: the run 'succeeds with failures' and on_failure stays silent."""
    fine = nb("fine", "x = 1")
    boom = nb("boom", "raise RuntimeError('broken')")
    result = run(
        tmp_path,
        [task("work", boom), task("cleanup", fine, ["work"], run_if="ALL_DONE")],
        job_extra={"email_notifications": {"on_failure": ["oncall@example.com"]}},
    )
    assert states(result) == {"work": FAILED, "cleanup": SUCCESS}
    assert result.result_state == SUCCESS_WITH_FAILURES
    assert not [n for n in result.notifications if n.event == "on_failure"]


def test_upstream_failure_propagates_through_a_condition(tmp_path, nb):
    boom = nb("boom", "raise ValueError('no traces')")
    ok = nb("ok", "x = 1")
    result = run(
        tmp_path,
        [
            task("validate", boom),
            {
                "task_key": "cond",
                "depends_on": [{"task_key": "validate"}],
                "condition_task": {
                    "op": "NOT_EQUAL",
                    "left": "{{tasks.validate.values.validation_status}}",
                    "right": "passed",
                },
            },
            task("fix", ok, [{"task_key": "cond", "outcome": "true"}]),
        ],
    )
    assert states(result) == {"validate": FAILED, "cond": UPSTREAM_FAILED, "fix": UPSTREAM_FAILED}
    assert result.result_state == FAILED  # a skipped fix branch does not hide the failure


@pytest.mark.parametrize(
    "run_if, upstream_fails, expected",
    [
        ("ALL_SUCCESS", True, UPSTREAM_FAILED),
        ("ALL_SUCCESS", False, SUCCESS),
        ("AT_LEAST_ONE_FAILED", True, SUCCESS),
        ("AT_LEAST_ONE_FAILED", False, EXCLUDED),
        ("ALL_FAILED", False, EXCLUDED),
        ("NONE_FAILED", True, UPSTREAM_FAILED),
        ("ALL_DONE", True, SUCCESS),
        ("AT_LEAST_ONE_SUCCESS", True, SUCCESS),
    ],
)
def test_run_if(tmp_path, nb, run_if, upstream_fails, expected):
    ok = nb("ok", "x = 1")
    bad = nb("bad", "raise RuntimeError('x')")
    result = run(
        tmp_path, [task("a", ok), task("b", bad if upstream_fails else ok), task("c", ok, ["a", "b"], run_if=run_if)]
    )
    assert result.tasks["c"].state == expected


def test_retries_then_success(tmp_path, nb):
    marker = tmp_path / "attempted"
    flaky = nb(
        "flaky",
        f"from pathlib import Path\np = Path({str(marker)!r})",
        "first = not p.exists()\np.write_text('1')\nassert not first, 'transient failure'",
    )
    result = run(tmp_path, [task("flaky", flaky, max_retries=1, min_retry_interval_millis=60000)])
    assert result.tasks["flaky"].state == SUCCESS and result.tasks["flaky"].attempts == 2
    assert "does not" in result.tasks["flaky"].note


def test_timeout_is_timedout_and_not_retried_by_default(tmp_path, nb):
    slow = nb("slow", "import time\ntime.sleep(30)")
    result = run(tmp_path, [task("slow", slow, timeout_seconds=2, max_retries=2)])
    assert result.tasks["slow"].state == TIMEDOUT and result.tasks["slow"].attempts == 1
    assert result.result_state == FAILED


def test_undefined_widget_and_oversized_task_value_fail_like_on_databricks(tmp_path, nb):
    widget = nb("widget", "dbutils.widgets.get('not_a_parameter')")
    big = nb("big", "dbutils.jobs.taskValues.set(key='x', value='y' * 60000)")
    result = run(tmp_path, [task("widget", widget), task("big", big)])
    assert "No input widget named not_a_parameter" in result.tasks["widget"].error
    assert "48 KiB" in result.tasks["big"].error


def test_notebook_exit_ends_the_task_successfully(tmp_path, nb):
    early = nb(
        "early", "dbutils.jobs.taskValues.set(key='a', value=1)\ndbutils.notebook.exit('done')", "raise SystemExit(3)"
    )
    result = run(tmp_path, [task("early", early)])
    assert result.tasks["early"].state == SUCCESS and result.tasks["early"].values == {"a": 1}


def test_duration_health_rule_alerts(tmp_path, nb):
    result = run(
        tmp_path,
        [task("a", nb("ok", "x = 1"))],
        job_extra={
            "health": {"rules": [{"metric": "RUN_DURATION_SECONDS", "op": "GREATER_THAN", "value": 0}]},
            "email_notifications": {"on_duration_warning_threshold_exceeded": ["oncall@example.com"]},
        },
    )
    assert result.health_alerts and result.notifications[-1].event == "on_duration_warning_threshold_exceeded"


def test_bad_graphs_are_refused_before_running(tmp_path, nb):
    ok = nb("ok", "x = 1")
    with pytest.raises(BundleError, match="cycle"):
        run(tmp_path, [task("a", ok, ["b"]), task("b", ok, ["a"])])
    with pytest.raises(BundleError, match="unknown task 'zz'"):
        run(tmp_path, [task("a", ok, ["zz"])])
    with pytest.raises(BundleError, match="not a condition task"):
        run(tmp_path, [task("a", ok), task("b", ok, [{"task_key": "a", "outcome": "true"}])])
    with pytest.raises(BundleError, match="unknown job parameter"):
        run(tmp_path, [task("a", ok)], overrides={"nope": "1"})
    with pytest.raises(BundleError, match="no parameter 'missing'"):
        run(tmp_path, [task("a", ok, params={"x": "{{job.parameters.missing}}"})])


def test_condition_on_a_missing_task_value_fails(tmp_path, nb):
    result = run(
        tmp_path,
        [
            task("a", nb("quiet", "x = 1")),
            {
                "task_key": "cond",
                "depends_on": [{"task_key": "a"}],
                "condition_task": {"op": "GREATER_THAN", "left": "{{tasks.a.values.count}}", "right": "0"},
            },
        ],
    )
    assert result.tasks["cond"].state == FAILED and "did not set task value 'count'" in result.tasks["cond"].error
