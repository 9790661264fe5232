"""Shared fixtures: real MLflow stores on sqlite in tmp folders, traces written through MLflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trace2eval.env import apply_safe_mlflow_env

apply_safe_mlflow_env()
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
# Left by any test run, never a product of one test: ignored when checking the checkout.
_RUN_LITTER = (".venv/", ".pytest_cache/", "__pycache__/", ".pyc", ".egg-info/", ".ruff_cache/", ".mypy_cache/")


def _checkout_files() -> set[str] | None:
    """Untracked and ignored paths in the checkout, or None when it is not a git work tree."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return None
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        return None
    paths = {line[3:] for line in proc.stdout.splitlines() if line[:2] in ("??", "!!")}
    return {p for p in paths if not any(part in p for part in _RUN_LITTER)}


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean(tmp_path_factory):
    """Tests run in a scratch folder, and the checkout gains no file.

    MLflow puts artifacts of an experiment it creates in `./mlruns` of the current folder, and
    other tools write beside the process too (`.trace2eval/`, `mlflow.db`): the whole session runs
    with a temporary folder as its working directory, and the checkout is compared before and after.
    """
    before = _checkout_files()
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(cwd)
    after = _checkout_files()
    if before is not None and after is not None:
        gained = sorted(after - before)
        assert not gained, f"the tests left files in the checkout: {gained[:20]}"


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
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(demo_store["experiment_id"], demo_store["uri"])
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
