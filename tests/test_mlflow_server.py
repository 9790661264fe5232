"""End to end against a real `mlflow server` process on 127.0.0.1 (HTTP store, not sqlite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlflow_server as mlflow_server_process

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    proc, url = mlflow_server_process.start(tmp_path_factory.mktemp("server"))
    yield url
    mlflow_server_process.stop(proc)


def test_run_against_mlflow_server(mlflow_server, tmp_path):
    seed = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from trace2eval.env import apply_safe_mlflow_env; apply_safe_mlflow_env();"
                "from trace2eval.demo.seed import seed_experiment;"
                f"print(seed_experiment({mlflow_server!r}, n=24))"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seed.returncode == 0, seed.stderr[-2000:]
    experiment_id = seed.stdout.strip().splitlines()[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            experiment_id,
            "--tracking-uri",
            mlflow_server,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    session = Path(proc.stdout.strip().splitlines()[-1])
    import json

    validation = json.loads((session / "state" / "validation_results.json").read_text())
    assert validation["validation_status"] == "passed"
    assert validation["details"]["rows_with_trace"] == validation["details"]["rows"] > 0
    from mlflow import MlflowClient

    run = MlflowClient(mlflow_server).get_run(validation["run_id"])
    assert any(k.endswith("/mean") for k in run.data.metrics)
