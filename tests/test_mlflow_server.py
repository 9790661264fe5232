"""End to end against a real `mlflow server` process on 127.0.0.1 (HTTP store, not sqlite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_MODEL_CATALOG_URI": ""}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {proc.stderr.read().decode()[-2000:]}")
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not start in 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


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
