"""A real `mlflow server` process on 127.0.0.1 for the tests that need the server, not a store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A server on a free port with its sqlite store and artifacts in `folder`: (process, url).
    `env` is the server's whole environment (the test's own by default)."""
    port = _free_port()
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        + [
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={"MLFLOW_MODEL_CATALOG_URI": "", **(os.environ if env is None else env)},
        # The server runs its job runner in child processes: a group of its own, ended whole.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                # A health answer from another process on a reused port does not count: ours must be up.
                if r.status == 200 and proc.poll() is None:
                    return proc, url
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}")
    stop(proc)
    raise RuntimeError(f"mlflow server did not start in {START_TIMEOUT_S} s")


def stop(proc: subprocess.Popen) -> None:
    """End the server and the processes it started (this test's, by their group id)."""
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def add_gateway_endpoint(tracking_uri: str, name: str = "judge", api_base: str | None = None) -> str:
    """An AI Gateway endpoint (provider openai) in the store or on the server at `tracking_uri`, made
    through MLflow's own store client; `api_base`: the loopback model server it forwards to. The
    open-source tracking store starts registered judges only on such an endpoint."""
    from mlflow.entities.gateway_endpoint import GatewayEndpointModelConfig, GatewayModelLinkageType
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(tracking_uri)
    secret = store.create_gateway_secret(
        secret_name=f"{name}-key",
        secret_value={"api_key": "unused"},
        provider="openai",
        auth_config={"api_base": f"{api_base}/v1"} if api_base else None,
    )
    model = store.create_gateway_model_definition(
        name=f"{name}-model", secret_id=secret.secret_id, provider="openai", model_name="gpt-4o-mini"
    )
    config = GatewayEndpointModelConfig(
        model_definition_id=model.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY
    )
    store.create_gateway_endpoint(name=name, model_configs=[config])
    return f"gateway:/{name}"
