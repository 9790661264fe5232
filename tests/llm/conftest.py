"""Fixtures for LLM sessions: loopback Messages servers, credential-free environments, and
deterministic sessions (on a private copy of the demo store) for an LLM session to refine."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from messages_server import MessagesServer  # noqa: E402

TOKEN = "dapi-loopback-test-token-7f3a9c"  # deliberately NOT a pattern the redactor knows
API_KEY = "sk-ant-" + "loopback-test-key-0000000000000000"  # fake; split so secret scanners stay quiet


@pytest.fixture
def llm_env(monkeypatch, tmp_path):
    """No real credentials anywhere: Databricks/Anthropic settings cleared, no ~/.databrickscfg."""
    for key in list(os.environ):
        if key.startswith(("DATABRICKS_", "ANTHROPIC_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    return monkeypatch


@pytest.fixture
def serve(llm_env):
    """serve(model, provider="databricks") → a started MessagesServer the environment points at."""
    servers = []

    def start(model, provider: str = "databricks") -> MessagesServer:
        server = MessagesServer(model).__enter__()
        servers.append(server)
        if provider == "databricks":
            llm_env.setenv("DATABRICKS_HOST", server.url)
            llm_env.setenv("DATABRICKS_TOKEN", TOKEN)
        else:
            llm_env.setenv("ANTHROPIC_API_KEY", API_KEY)
            llm_env.setenv("ANTHROPIC_BASE_URL", server.url)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def demo_copy(demo_store, tmp_path):
    """A private copy of the demo store: LLM sessions write their own traces into it."""
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(demo_store["folder"] / "mlflow.db", folder / "mlflow.db")
    return {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment_id": demo_store["experiment_id"], "folder": folder}


@pytest.fixture(scope="session")
def deterministic_session(demo_store, tmp_path_factory):
    """Initializer, dataset and scorers done without an LLM: the starting point LLM sessions refine."""
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(demo_store["experiment_id"], demo_store["uri"])
    session = runner.create_session(config, tmp_path_factory.mktemp("det-sessions"))
    for task in ("initializer", "dataset", "scorers"):
        runner.run_task(session, task)
    return session


@pytest.fixture
def llm_session(deterministic_session, demo_copy, tmp_path):
    """llm_session(**settings) → a copy of the deterministic session configured for an LLM."""
    from trace2eval.sessions.session import Session

    count = iter(range(1, 100))

    def make(**settings):
        target = tmp_path / f"session-{next(count)}"
        shutil.copytree(deterministic_session.dir, target)
        config_file = target / "state" / "config.json"
        config = json.loads(config_file.read_text())
        config.update(
            {
                "llm": "databricks",
                "tracking_uri": demo_copy["uri"],
                "llm_trace_experiment": None,
                "llm_timeout_s": 10,
                "llm_session_seconds": 60,
            }
        )
        config.update(settings)
        config_file.write_text(json.dumps(config))
        return Session.open(target)

    return make


def session_files_text(folder: Path) -> str:
    """Every file of a session folder, as text (for secrets checks)."""
    return "\n".join(p.read_text(errors="replace") for p in Path(folder).rglob("*") if p.is_file())
