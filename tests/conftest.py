"""Shared fixtures: real MLflow stores on sqlite in tmp folders, traces written through MLflow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trace2eval.env import apply_safe_mlflow_env

apply_safe_mlflow_env()
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def store(tmp_path):
    """A fresh sqlite tracking store and a writer for hand-made traces."""
    from tracefactory import TraceStore

    return TraceStore(tmp_path / "mlflow.db")


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """The sample agent's traces (written once per test run): read-only for tests."""
    from trace2eval.demo.seed import seed_experiment

    folder = tmp_path_factory.mktemp("demo-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment_id = seed_experiment(uri, n=40)
    return {"uri": uri, "experiment_id": experiment_id, "folder": folder}


@pytest.fixture(scope="session")
def demo_session(demo_store, tmp_path_factory):
    """One full session on the demo store (validated), shared by read-only tests."""
    from trace2eval.cli.options import build_config
    from trace2eval.sessions import runner

    config = build_config(demo_store["experiment_id"], demo_store["uri"], "none", "", None, 0, None, None, None)
    session = runner.create_session(config, tmp_path_factory.mktemp("demo-sessions"))
    assert runner.run_all(session)
    return session


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""
    from trace2eval.cli.main import main

    def invoke(*args: str):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    return invoke
