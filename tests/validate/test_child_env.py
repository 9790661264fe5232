"""validate runs the generated run_eval.py without the generator's secrets: only what Python, MLflow
and the configured judge model's provider need reaches the child."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from trace2eval.validate.run import scrubbed_env

# Fake secrets, built by concatenation so secret scanners stay quiet.
FAKE = {
    "AWS_ACCESS_KEY_ID": "AKIA" + "Z" * 16,
    "AWS_SECRET_ACCESS_KEY": "wJalr" + "x" * 35,
    "GITHUB_TOKEN": "ghp_" + "a" * 36,
    "ANTHROPIC_API_KEY": "sk-ant-" + "b" * 40,
    "OPENAI_API_KEY": "sk-" + "c" * 40,
    "DATABRICKS_TOKEN": "dapi" + "d" * 32,
    "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    "COMPANY_DB_PASSWORD": "hunter" + "2" * 10,
    "MLFLOW_TRACKING_TOKEN": "mlflow-" + "e" * 20,
}
BASICS = {
    "PATH": "/usr/bin",
    "HOME": "/home/u",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONPATH": "/src",
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    "TRACE2EVAL_JUDGE_MODEL": "x",
    "TRACE2EVAL_LLM_SECRET": "not read by run_eval",
}


@pytest.mark.parametrize(
    "judge_model, tracking_uri, kept",
    [
        (None, "sqlite:///mlflow.db", set()),
        ("databricks:/databricks-claude-sonnet-4-5", "sqlite:///mlflow.db", {"DATABRICKS_TOKEN", "DATABRICKS_HOST"}),
        ("openai:/gpt-4.1-mini", "sqlite:///mlflow.db", {"OPENAI_API_KEY"}),
        ("anthropic:/claude-sonnet-4-5", "sqlite:///mlflow.db", {"ANTHROPIC_API_KEY"}),
        ("bedrock:/anthropic.claude", "sqlite:///mlflow.db", {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
        (None, "databricks", {"DATABRICKS_TOKEN", "DATABRICKS_HOST"}),  # the store itself is the workspace
        ("openai:/gpt-4.1-mini", "databricks://prod", {"OPENAI_API_KEY", "DATABRICKS_TOKEN", "DATABRICKS_HOST"}),
    ],
)
def test_only_the_configured_providers_credentials_pass(judge_model, tracking_uri, kept):
    env = scrubbed_env({**BASICS, **FAKE}, judge_model, tracking_uri)
    secrets = set(FAKE) - {"MLFLOW_TRACKING_TOKEN"}
    assert {k for k in env if k in secrets} == kept
    assert env["MLFLOW_TRACKING_TOKEN"] == FAKE["MLFLOW_TRACKING_TOKEN"]  # the tracking server's own credential
    assert {k: env[k] for k in BASICS if k in env} == {k: v for k, v in BASICS.items() if k != "TRACE2EVAL_LLM_SECRET"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from tracefactory import TraceStore, add_support_traces
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    folder = tmp_path_factory.mktemp("child-env-store")
    store = TraceStore(folder / "mlflow.db")
    add_support_traces(store, 0, 12)
    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    session = runner.create_session(config, folder / "sessions")
    assert runner.run_all(session)
    return folder, session


@pytest.fixture
def session(generated, tmp_path):
    """A private copy of the validated session and its store."""
    from trace2eval.sessions.session import Session

    folder, original = generated
    shutil.copy(folder / "mlflow.db", tmp_path / "mlflow.db")
    target = tmp_path / "session"
    shutil.copytree(original.dir, target, ignore=shutil.ignore_patterns(".*"))
    config_file = target / "state" / "config.json"
    config = json.loads(config_file.read_text())
    config["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config_file.write_text(json.dumps(config))
    return Session(target.resolve())


def set_judge_model(session, model):
    config_file = session.state_dir / "config.json"
    config = json.loads(config_file.read_text())
    config["judge_model"] = model
    config_file.write_text(json.dumps(config))


@pytest.fixture
def child_env_probe(tmp_path, monkeypatch):
    """A sitecustomize on the child's PYTHONPATH (which the scrubbed environment keeps) that writes the
    environment run_eval.py starts with to a file: what the child really saw, not what we meant."""
    hook = tmp_path / "hook"
    hook.mkdir()
    seen = tmp_path / "child_env.json"
    (hook / "sitecustomize.py").write_text(
        "import json, os, sys\n"
        "if sys.argv and sys.argv[0].endswith('run_eval.py'):\n"
        f"    open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]))
    for key, value in FAKE.items():
        monkeypatch.setenv(key, value)
    return lambda: json.loads(seen.read_text())


@pytest.mark.slow
def test_validate_child_sees_no_secrets(session, child_env_probe):
    from trace2eval.sessions.tasks import validate

    summary = validate.run(session)
    assert summary["validation_status"] == "passed", session.validation().model_dump()["problems"]
    env = child_env_probe()
    assert "PATH" in env and "MLFLOW_SQLALCHEMYSTORE_POOLCLASS" in env
    leaked = {k for k, v in env.items() if v in set(FAKE.values()) - {FAKE["MLFLOW_TRACKING_TOKEN"]}}
    assert not leaked
    assert env.get("MLFLOW_TRACKING_TOKEN") == FAKE["MLFLOW_TRACKING_TOKEN"]


@pytest.mark.slow
def test_validate_with_a_databricks_judge_passes_only_databricks_credentials(session, child_env_probe, monkeypatch):
    from judge_server import JudgeServer
    from trace2eval.sessions.tasks import validate

    server = JudgeServer(lambda n: "yes")
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    set_judge_model(session, "databricks:/some-endpoint")
    try:
        summary = validate.run(session)
    finally:
        server.close()
    validation = session.validation().model_dump()
    assert summary["validation_status"] == "passed", validation["problems"]
    assert validation["details"]["judges_run"] and server.calls
    assert all(c["authorization"] == "Bearer " + FAKE["DATABRICKS_TOKEN"] for c in server.calls)
    env = child_env_probe()
    assert env["DATABRICKS_TOKEN"] == FAKE["DATABRICKS_TOKEN"] and env["DATABRICKS_HOST"] == server.url
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "COMPANY_DB_PASSWORD"):
        assert key not in env


@pytest.mark.slow
@pytest.mark.parametrize(
    "answers, kind",
    [
        (lambda n: 403, "judge_unavailable"),  # refused from the first call
        (lambda n: "yes" if n == 0 else 403, "scorer_error"),  # the check passes, then every row fails
    ],
    ids=["refused", "fails-after-check"],
)
def test_broken_judges_fail_validation_naming_them(session, monkeypatch, answers, kind):
    from judge_server import JudgeServer
    from trace2eval.sessions.tasks import validate

    server = JudgeServer(answers)
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", FAKE["DATABRICKS_TOKEN"])
    set_judge_model(session, "databricks:/some-endpoint")
    try:
        summary = validate.run(session)
    finally:
        server.close()
    validation = session.validation().model_dump()
    assert summary["validation_status"] == "failed"
    problems = [p for p in validation["problems"] if p["kind"] == kind]
    assert problems and all(p["scorer"] and "PERMISSION_DENIED" in p["detail"] for p in problems)
    if kind == "scorer_error":
        assert all(p["most_rows"] and p["values"] == 0 and "a value for only 0 of" in p["detail"] for p in problems)
    assert validation["details"]["exit_code"] == 2
