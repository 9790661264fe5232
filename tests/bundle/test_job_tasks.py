"""What the notebooks call: parameters in, one session task, task values out; secrets stay in memory."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import pytest
from filesapi_server import TOKEN, FilesApiServer
from tracefactory import add_support_traces

from trace2eval.bundle.job_tasks import (
    JobParameterError,
    JobTaskSettings,
    MonitoredRegression,
    run_job_task,
    run_monitor,
)
from trace2eval.sessions.filesapi import VolumeFolder

SECRET = "sk-ant-" + "test-0123456789abcdefghij"  # fake; split so secret scanners stay quiet


NO_STORE = SimpleNamespace(experiment_id="1", uri="sqlite:///unused.db")  # for checks that never reach MLflow


def params(store, volume, **extra):
    return {
        "experiment_id": store.experiment_id,
        "tracking_uri": store.uri,
        "volume": str(volume),
        "run_id": "42",
        "llm": "none",
        "llm_model": "",
        "judge_model": "",
        "max_traces": "0",
        "since": "",
        "max_fix_attempts": "2",
        "max_suite_rows": "100",
        "secret_scope": "",
        **extra,
    }


class FakeDbutils:
    """The parts of Databricks' dbutils the library touches."""

    def __init__(self, secrets: dict[str, str]):
        self._secrets = secrets
        self.secrets = SimpleNamespace(
            list=lambda scope: [SimpleNamespace(key=k) for k in secrets], get=lambda scope, key: secrets[key]
        )
        context = SimpleNamespace(
            apiUrl=lambda: SimpleNamespace(get=lambda: "https://example.invalid"),
            apiToken=lambda: SimpleNamespace(get=lambda: "notebook-run-token"),
        )
        self.notebook = SimpleNamespace(
            entry_point=SimpleNamespace(
                getDbutils=lambda: SimpleNamespace(notebook=lambda: SimpleNamespace(getContext=lambda: context))
            )
        )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"experiment_id": ""},
            "job parameter 'experiment_id' is empty — set it: `databricks bundle deploy --var experiment_id=...`",
        ),
        ({"volume": "/Volumes/main"}, "is not a Volume path"),
        ({"max_traces": "lots"}, "'max_traces' must be a whole number"),
        ({"run_id": ""}, "job parameter 'run_id' is empty"),
        ({"monitor_sample_rate": "2"}, "'monitor_sample_rate' must be a share of traces from 0 (off) to 1, got '2'"),
        ({"monitor_sample_rate": "some"}, "'monitor_sample_rate' must be a share of traces"),
        ({"fail_on_monitored_regression": "maybe"}, "'fail_on_monitored_regression' must be true or false"),
    ],
)
def test_bad_parameters_are_clear_errors(tmp_path, change, message):
    with pytest.raises(JobParameterError, match=re.escape(message)):
        JobTaskSettings.from_params({**params(NO_STORE, tmp_path), **change})


def test_session_and_suite_live_in_the_volume():
    settings = JobTaskSettings.from_params(params(NO_STORE, "/Volumes/main/evals/state/"))
    assert settings.session_dir == "/Volumes/main/evals/state/sessions/42"
    assert settings.suite_dir == "/Volumes/main/evals/state/suite"
    assert settings.judge_model is None and settings.max_traces == 0 and settings.tracking_uri == NO_STORE.uri


def test_initializer_publishes_values_and_secrets_never_reach_files(store, tmp_path, monkeypatch):
    add_support_traces(store, 0, 6)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "16.4")  # as inside a job
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    values = run_job_task(
        "initializer",
        params(store, tmp_path / "vol", secret_scope="trace2eval"),
        FakeDbutils({"anthropic-api-key": SECRET}),
    )
    assert values == {
        "status": "completed",
        "session_dir": f"{tmp_path}/vol/sessions/42",
        "traces": 6,
        "new_traces": 6,
        "findings": values["findings"],
    }
    assert os.environ["ANTHROPIC_API_KEY"] == SECRET  # for this process and its children only
    assert os.environ["DATABRICKS_TOKEN"] == "notebook-run-token"  # run_eval.py acts as the job's identity
    for path in (tmp_path / "vol").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert SECRET not in text and "notebook-run-token" not in text, path
    # A retried initializer (same run id) does not start over.
    again = run_job_task("initializer", params(store, tmp_path / "vol"))
    assert again["status"] == "completed"


def test_a_missing_secret_scope_is_a_clear_error(tmp_path):
    class NoScope(FakeDbutils):
        def __init__(self):
            super().__init__({})
            self.secrets = SimpleNamespace(
                list=lambda scope: (_ for _ in ()).throw(RuntimeError("RESOURCE_DOES_NOT_EXIST"))
            )

    with pytest.raises(JobParameterError, match="cannot read secret scope 'nope'"):
        run_job_task("initializer", params(NO_STORE, tmp_path, secret_scope="nope"), NoScope())


def test_a_job_task_against_a_volume_from_a_laptop(store, tmp_path, monkeypatch):
    add_support_traces(store, 0, 5)
    with FilesApiServer() as workspace:
        workspace.add_volume("/Volumes/main/evals/state")
        monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("TRACE2EVAL_CACHE_DIR", str(tmp_path / "cache"))
        values = run_job_task("initializer", params(store, "/Volumes/main/evals/state"))
        assert values["session_dir"] == "/Volumes/main/evals/state/sessions/42" and values["new_traces"] == 5
        files = VolumeFolder("/Volumes/main/evals/state/sessions/42").list_files()
        assert {"eval_tasks.json", "state/analysis.json", "state/trace_window.json"} <= set(files)
        values = run_job_task("dataset", params(store, "/Volumes/main/evals/state"))
        assert values["rows"] > 0 and "evaluation/eval_dataset.json" in VolumeFolder(
            "/Volumes/main/evals/state/sessions/42"
        ).list_files("evaluation")


def test_unknown_task(tmp_path):
    with pytest.raises(JobParameterError, match="unknown task 'deploy'"):
        run_job_task("deploy", params(NO_STORE, tmp_path))


def test_trace_source_parameter_reaches_the_session_config():
    from trace2eval.bundle.job_tasks import JobTaskSettings, session_config

    params = {
        "experiment_id": "7",
        "tracking_uri": "sqlite:///x.db",
        "volume": "/Volumes/c/s/v",
        "run_id": "42",
        "trace_source": "uc:main.agents.prod",
    }
    config = session_config(JobTaskSettings.from_params(params))
    assert config.source == "uc:main.agents.prod"
    assert session_config(JobTaskSettings.from_params({**params, "trace_source": ""})).source == "mlflow"


def test_monitor_task_is_off_by_default_and_touches_nothing(tmp_path):
    settings = JobTaskSettings.from_params(params(NO_STORE, tmp_path / "vol"))
    assert (settings.monitor_sample_rate, settings.fail_on_monitored_regression) == (0.0, False)
    # No suite, no store: with both settings off the task reads neither.
    values = run_monitor(params(NO_STORE, tmp_path / "vol", monitor_sample_rate="0"))
    assert values["status"] == "skipped" and "monitor_sample_rate is 0" in values["reason"]
    assert not (tmp_path / "vol").exists()


def test_monitor_task_syncs_only_after_this_run_published_the_suite_validated(tmp_path):
    """A night that published nothing (or a failed validation) leaves the monitors as they are; the
    store is never reached (NO_STORE would fail)."""
    state = tmp_path / "vol" / "suite" / "state"
    state.mkdir(parents=True)
    for history in ([], [{"session": "41", "published": True, "validation_status": "passed"}]):
        (state / "runs.json").write_text(json.dumps(history + [{"session": "42", "validation_status": "failed"}]))
        values = run_monitor(params(NO_STORE, tmp_path / "vol", monitor_sample_rate="0.5"))
        assert values["status"] == "skipped" and "did not publish a validated suite" in values["reason"]


@pytest.mark.slow  # 80 assessments logged one by one
def test_a_monitored_regression_fails_the_task_naming_the_scorer(store, tmp_path):
    from mlflow.entities import AssessmentSource, Feedback

    from trace2eval.sessions.monitor import PREFIX

    day = 86_400_000
    now = 1_767_225_600_000 + 3 * day  # the factory's traces start on 2026-01-01
    suite = tmp_path / "vol" / "suite"
    (suite / "evaluation").mkdir(parents=True)
    (suite / "evaluation" / "eval_gates.json").write_text('{"tolerance": 0.1}')
    ids = [store.add({"q": f"question {i}"}, f"answer {i}") for i in range(40)]
    for i, trace_id in enumerate(ids):  # yesterday all passed; today 8 of 20 fail; tool_errors rises
        when, passed = (now - day, True) if i < 20 else (now, i >= 28)
        for name, value in (("refund_policy", passed), ("tool_errors", i >= 20)):
            store.mlflow.log_assessment(
                trace_id=trace_id,
                assessment=Feedback(
                    name=PREFIX + name,
                    value=value,
                    source=AssessmentSource(source_type="CODE", source_id=name),
                    create_time_ms=when,
                ),
            )
    off = params(store, tmp_path / "vol", fail_on_monitored_regression="false", monitor_sample_rate="0")
    assert run_monitor(off, now_ms=now)["status"] == "skipped"
    on = {**off, "fail_on_monitored_regression": "true"}
    with pytest.raises(MonitoredRegression) as raised:
        run_monitor(on, now_ms=now)
    message = str(raised.value)
    # Only the fall alerts: tool_errors rose from 0% to 100%, beyond the tolerance too.
    assert "monitored regression: refund_policy fell from 100.0% (20 traces) to 60.0% (20 traces)" in message
    assert "tool_errors" not in message and "fail_on_monitored_regression=false" in message
    # Within the suite's tolerance nothing fails.
    (suite / "evaluation" / "eval_gates.json").write_text('{"tolerance": 0.5}')
    assert run_monitor(on, now_ms=now)["regressed"] == ""
