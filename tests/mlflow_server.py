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
