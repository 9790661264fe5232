"""A tracking URI with a password: used to connect, never stored, rendered or printed."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from trace2eval import config as config_module
from trace2eval.config import SessionConfig
from trace2eval.errors import SourceError
from trace2eval.traces.source import open_client

PASSWORD = "Pw-" + "q7Zr2Lm9"  # fake, split so secret scanners stay quiet


class _Store(BaseHTTPRequestHandler):
    """Just enough of the MLflow REST API to open a client on experiment 1; records each request's auth."""

    seen: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.headers.get("Authorization"))
        if self.path.startswith("/health"):
            body = b"OK"
        elif self.path.startswith("/api/2.0/mlflow/experiments/get"):
            body = json.dumps(
                {
                    "experiment": {
                        "experiment_id": "1",
                        "name": "prod",
                        "lifecycle_stage": "active",
                        "artifact_location": "file:///tmp/x",
                    }
                }
            ).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Store.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_process(monkeypatch):
    """As a later task's process sees it: no remembered URIs, no URI in the environment."""
    monkeypatch.setattr(config_module, "_REAL_URIS", {})
    for name in config_module.URI_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


def test_the_stored_config_is_masked_and_the_real_uri_still_connects(server, tmp_path, fresh_process):
    from trace2eval.sessions import runner

    uri = f"http://svc:{PASSWORD}@{server}"
    config = SessionConfig.from_inputs("1", uri)
    session = runner.create_session(config, tmp_path)
    stored = json.loads(session.config_file.read_text())["tracking_uri"]
    assert stored == f"http://svc:***@{server}" and PASSWORD not in _files_text(session.dir)
    assert config.shown_tracking_uri == stored

    # Same process: the session's config reads back with the password, which goes to the server.
    assert session.config().tracking_uri == uri
    open_client(session.config().tracking_uri, "1")
    assert "Basic " + base64.b64encode(f"svc:{PASSWORD}".encode()).decode() in _Store.seen


def test_a_later_process_takes_the_password_from_the_environment_or_says_what_is_missing(
    server, tmp_path, fresh_process, monkeypatch
):
    uri = f"http://svc:{PASSWORD}@{server}"
    stored = SessionConfig(experiment_id="1", tracking_uri=uri).model_dump(mode="json")
    config_module._REAL_URIS.clear()

    missing = SessionConfig.model_validate(stored)
    assert missing.tracking_uri == f"http://svc:***@{server}"
    with pytest.raises(SourceError, match="password of tracking URI .* is not stored") as err:
        open_client(missing.tracking_uri, "1")
    assert "MLFLOW_TRACKING_URI" in str(err.value)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert SessionConfig.model_validate(stored).tracking_uri == uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://svc:{PASSWORD}@other-host:5000")  # another store: not used
    config_module._REAL_URIS.clear()
    assert SessionConfig.model_validate(stored).tracking_uri == f"http://svc:***@{server}"


def test_a_failing_run_prints_and_stores_no_password(cli, tmp_path, fresh_process):
    # Nothing listens on this port: the run fails at the initializer and says why.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/mlflow"
    code, out, err = cli("run", "-e", "1", "--tracking-uri", uri, "-o", tmp_path / "out", "-q")
    assert code != 0
    assert PASSWORD not in out + err
    assert PASSWORD not in _files_text(tmp_path / "out")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "uri", ["databricks", "databricks://my-profile", "sqlite:////tmp/x/mlflow.db", "http://127.0.0.1:5000"]
)
def test_uris_without_credentials_are_kept_as_given(uri, fresh_process):
    config = SessionConfig(experiment_id="1", tracking_uri=uri)
    assert config.model_dump(mode="json")["tracking_uri"] == uri == config.tracking_uri
