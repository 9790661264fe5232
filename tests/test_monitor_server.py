"""`trace2eval monitor` against real `mlflow server` processes on 127.0.0.1 (job runner on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlflow_server

from trace2eval.sessions import monitor
from trace2eval.sessions.files import read_json, write_json

pytestmark = [pytest.mark.slow, pytest.mark.server]


def _server(folder: Path, custom_scorers: bool):
    env = {
        **{k: v for k, v in os.environ.items() if k != monitor.CUSTOM_SCORERS_ENV},
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
        **({monitor.CUSTOM_SCORERS_ENV: "true"} if custom_scorers else {}),
    }
    return mlflow_server.start(folder, env)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A validated session on the sample agent's traces, made by separate processes (as a user would)."""
    folder = tmp_path_factory.mktemp("generated")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    code = (
        "from trace2eval.env import apply_safe_mlflow_env; apply_safe_mlflow_env();"
        f"from trace2eval.demo.seed import seed_experiment; print(seed_experiment({uri!r}, n=24))"
    )
    seed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    experiment_id = seed.stdout.strip().splitlines()[-1]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            experiment_id,
            "--tracking-uri",
            uri,
            "-o",
            str(folder),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return Path(run.stdout.strip().splitlines()[-1])


def _suite_on(url: str, generated: Path, tmp_path: Path) -> Path:
    import mlflow

    experiment_id = mlflow.MlflowClient(url).create_experiment(f"monitored-{tmp_path.name}")
    folder = tmp_path / "session"
    shutil.copytree(generated, folder)
    config = read_json(folder / "state" / "config.json")
    config.update(tracking_uri=url, experiment_id=experiment_id)
    write_json(folder / "state" / "config.json", config)
    return folder


def test_server_without_custom_scorers_gets_a_clear_message(generated, tmp_path, cli, monkeypatch):
    monkeypatch.delenv(monitor.CUSTOM_SCORERS_ENV, raising=False)
    proc, url = _server(tmp_path, custom_scorers=False)
    try:
        folder = _suite_on(url, generated, tmp_path)
        code, out, err = cli("monitor", folder, "--no-check")
    finally:
        mlflow_server.stop(proc)
    assert code == 1, out + err
    assert f"refuses custom code scorers — start it with {monitor.CUSTOM_SCORERS_ENV}=true" in err
    assert "Traceback" not in err


def test_server_with_custom_scorers_registers_and_loads_them_back(generated, tmp_path, cli):
    proc, url = _server(tmp_path, custom_scorers=True)
    try:
        folder = _suite_on(url, generated, tmp_path)
        code, out, err = cli("monitor", folder, "--sample-rate", "0.5")
        target = monitor.resolve(folder)
        found = {r.name: r for r in monitor.registered(target)}
    finally:
        mlflow_server.stop(proc)
    assert code == 0, err
    names = [s.name for s in monitor.load_suite_specs(target) if s.implementation in ("code", "rule")]
    assert set(found) == {monitor.PREFIX + n for n in names}
    # Loaded back over HTTP in a fresh process, each says what the suite says on every row.
    assert f"identity: {len(names)} of {len(names)} registered code scorers say what the suite says" in out
    # MLflow's open-source server (3.17) starts only gateway:/ judges: the code scorers stay registered, not started.
    assert all(r.sample_rate is None for r in found.values())
    assert out.count(monitor.GATEWAY_ONLY) == len(names)
