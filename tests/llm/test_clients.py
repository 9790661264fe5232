"""Clients and retries against loopback servers that speak the Messages API (the real SDKs run)."""

from __future__ import annotations

import time

import pytest
from conftest import API_KEY, TOKEN
from messages_server import Reply, error, message, text

from trace2eval.config import SessionConfig
from trace2eval.errors import LLMUnavailable
from trace2eval.llm.calls import MAX_ATTEMPTS, RequestRejected, backoff_s, send
from trace2eval.llm.clients import connect


def config(llm="databricks", **kw) -> SessionConfig:
    return SessionConfig(experiment_id="1", tracking_uri="sqlite:///unused.db", llm=llm, **kw)


def request(model="m"):
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def reply_text(server_model):
    return lambda req: message([text("hello")], req)


def test_databricks_client_uses_the_serving_endpoint_path_bearer_token_and_endpoint_name(serve):
    server = serve(reply_text(None))
    client = connect(config(llm_model="my-claude-endpoint"))
    response = send(client, {**request(client.endpoint.model)}, time.monotonic() + 30)
    assert response.content[0].text == "hello"
    post = server.posts[0]
    assert post.path == "/serving-endpoints/anthropic/v1/messages"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.body["model"] == "my-claude-endpoint"
    assert client.endpoint.messages_url == f"{server.url}/serving-endpoints/anthropic/v1/messages"
    assert TOKEN not in repr(client.endpoint)


def test_databricks_profile_named_by_the_tracking_uri(serve, tmp_path, llm_env):
    server = serve(reply_text(None))
    llm_env.delenv("DATABRICKS_HOST")
    llm_env.delenv("DATABRICKS_TOKEN")
    cfg = tmp_path / "databrickscfg"
    cfg.write_text(f"[prod]\nhost = {server.url}\ntoken = {TOKEN}-prof\n")
    llm_env.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    client = connect(SessionConfig(experiment_id="1", tracking_uri="databricks://prod", llm="databricks"))
    send(client, request(), time.monotonic() + 30)
    assert server.posts[0].headers["authorization"] == f"Bearer {TOKEN}-prof"
    assert client.endpoint.model == "databricks-claude-opus-4-5"


def test_anthropic_client_uses_api_key_base_url_and_anthropic_model_name(serve):
    server = serve(reply_text(None), provider="anthropic")
    client = connect(config(llm="anthropic"))
    send(client, request(client.endpoint.model), time.monotonic() + 30)
    post = server.posts[0]
    assert post.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token (older releases used x-api-key)
    assert API_KEY in (post.headers.get("x-api-key"), post.headers.get("authorization", "").removeprefix("Bearer "))
    assert post.body["model"] == "claude-opus-4-5"  # the Databricks default endpoint name, mapped


def test_missing_credentials_say_how_to_fix(llm_env):
    with pytest.raises(LLMUnavailable) as exc:
        connect(config())
    assert "no Databricks credentials" in exc.value.what and "DATABRICKS_TOKEN" in exc.value.fix
    with pytest.raises(LLMUnavailable) as exc:
        connect(config(llm="anthropic"))
    assert exc.value.what == "ANTHROPIC_API_KEY is not set"


def test_5xx_and_429_are_retried_with_backoff_then_succeed(serve):
    answers = iter([error(500), error(529, "overloaded_error"), error(429, "rate_limit_error", **{"retry-after": "0"})])
    server = serve(lambda req: next(answers, None) or message([text("ok")], req))
    waits = []
    response = send(connect(config()), request(), time.monotonic() + 60, sleep=waits.append)
    assert response.content[0].text == "ok"
    assert len(server.posts) == 4 and len(waits) == 3
    assert waits[2] == 0.0  # retry-after honoured
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # exponential with jitter


def test_persistent_500_ends_in_llm_unavailable_without_leaking_the_token(serve):
    # A misconfigured proxy echoing the request headers into its error body.
    server = serve(lambda req: error(500, msg=f"upstream failed for Authorization: {req.headers.get('authorization')}"))
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config()), request(), time.monotonic() + 60, sleep=lambda s: None)
    assert len(server.posts) == MAX_ATTEMPTS
    assert "HTTP 500" in exc.value.what and f"after {MAX_ATTEMPTS} attempts" in exc.value.what
    assert TOKEN not in str(exc.value) and "[REDACTED]" in str(exc.value)


@pytest.mark.parametrize(
    "status, expected", [(401, "refused the credentials"), (403, "refused the credentials"), (404, "not found")]
)
def test_auth_and_missing_endpoint_are_not_retried(serve, status, expected):
    server = serve(lambda req: error(status))
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config()), request(), time.monotonic() + 60, sleep=lambda s: None)
    assert len(server.posts) == 1 and expected in exc.value.what


def test_a_rejected_request_is_not_an_outage(serve):
    serve(lambda req: error(400, "invalid_request_error", "prompt is too long"))
    with pytest.raises(RequestRejected, match="prompt is too long"):
        send(connect(config()), request(), time.monotonic() + 60, sleep=lambda s: None)


def test_malformed_responses_are_retried_then_reported(serve):
    server = serve(lambda req: Reply(raw=b'{"id": "msg_1", "type": "message", "content": [{"type": "te'))
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config()), request(), time.monotonic() + 60, sleep=lambda s: None)
    assert len(server.posts) == MAX_ATTEMPTS and "malformed response" in exc.value.what


def test_a_hanging_endpoint_times_out_twice_then_gives_up(serve):
    server = serve(lambda req: Reply(delay_s=30, body={}))
    start = time.monotonic()
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config(llm_timeout_s=1)), request(), time.monotonic() + 60, sleep=lambda s: None)
    assert time.monotonic() - start < 10
    assert "no response" in exc.value.what and len(server.posts) == 2


def test_nothing_listening_is_unavailable(llm_env):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm_env.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{port}")
    llm_env.setenv("DATABRICKS_TOKEN", TOKEN)
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config()), request(), time.monotonic() + 60, sleep=lambda s: None)
    assert "cannot connect" in exc.value.what


def test_retries_stop_at_the_session_deadline(serve):
    server = serve(lambda req: error(503))
    with pytest.raises(LLMUnavailable) as exc:
        send(connect(config()), request(), time.monotonic() + 1.4, sleep=lambda s: None)
    assert len(server.posts) == 1 and "time" in exc.value.what  # the backoff wait would pass the deadline


def test_backoff_is_capped():
    assert backoff_s(30) <= 20.0 and backoff_s(1, retry_after=7.0) == 7.0
