"""Clients for Claude: a Databricks serving endpoint (Foundation Model API) or the Anthropic API.

Both speak the Anthropic Messages API through the official `anthropic` SDK, so one tool-use loop
serves both. Credentials are read when a session starts and live only in the client object: the
`Endpoint` description that goes into state files and logs has none, and `LLMClient.scrub`
removes them from any text (an error body echoing a header, say) before it is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trace2eval.config import DEFAULT_LLM_MODEL, SessionConfig
from trace2eval.errors import LLMUnavailable
from trace2eval.traces.redact import redact_text

DEFAULT_ANTHROPIC_MODEL = "claude-opus-4-5"
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Endpoint:
    """Where requests go, without credentials: safe to log and to write into state."""

    provider: str  # "databricks" | "anthropic"
    base_url: str
    model: str

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/messages"


@dataclass
class LLMClient:
    sdk: object  # anthropic.Anthropic
    endpoint: Endpoint
    timeout_s: float
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        """Text with this client's credentials (and any known secret pattern) removed."""
        text = str(text)
        for secret in self.secrets:
            if secret and len(secret) >= 6:
                text = text.replace(secret, "[REDACTED]")
        return redact_text(text)


def resolve_model(provider: str, model: str | None) -> str:
    """The model name to send. `--llm-model` defaults to a Databricks endpoint name; with the
    Anthropic API that default means the same model under its Anthropic name."""
    model = (model or "").strip() or DEFAULT_LLM_MODEL
    if provider == "anthropic" and model == DEFAULT_LLM_MODEL:
        return DEFAULT_ANTHROPIC_MODEL
    return model


def connect(config: SessionConfig) -> LLMClient:
    """A ready client for the session's `--llm` choice, or LLMUnavailable saying what is missing."""
    if config.llm == "databricks":
        return _databricks(config)
    if config.llm == "anthropic":
        return _anthropic(config)
    raise LLMUnavailable(f"no LLM configured (--llm {config.llm})", "use --llm databricks or --llm anthropic")


def _timeout(config: SessionConfig):
    import anthropic

    return anthropic.Timeout(config.llm_timeout_s, connect=min(CONNECT_TIMEOUT_S, config.llm_timeout_s))


def _databricks_profile(tracking_uri: str) -> str | None:
    """`databricks://PROFILE` tracking URIs name the auth profile to use for the LLM as well."""
    if tracking_uri.startswith("databricks://"):
        rest = tracking_uri[len("databricks://") :]
        return rest.split(":", 1)[0] or None
    return None


AUTH_RETRY_S = 5  # databricks-sdk otherwise retries an unreachable host's metadata probe for 5 minutes


def databricks_auth(tracking_uri: str = "", timeout_s: float = 10.0) -> tuple[str, str]:
    """(workspace host, Authorization header value) from the databricks-sdk auth chain:
    DATABRICKS_HOST/DATABRICKS_TOKEN, a profile in ~/.databrickscfg, OAuth, or notebook-native auth."""
    import logging

    from databricks.sdk.core import Config

    profile = _databricks_profile(tracking_uri)
    sdk_log = logging.getLogger("databricks.sdk")
    level = sdk_log.level
    sdk_log.setLevel(logging.ERROR)  # its host-metadata probe warns on every workspace without it
    try:
        bounded = {"retry_timeout_seconds": AUTH_RETRY_S, "http_timeout_seconds": min(timeout_s, CONNECT_TIMEOUT_S)}
        cfg = Config(profile=profile, **bounded) if profile else Config(**bounded)
        headers = cfg.authenticate()
        host = (cfg.host or "").rstrip("/")
    except Exception as exc:  # the SDK raises ValueError and friends with long explanations
        first = str(exc).split(". ")[0][:300]
        raise LLMUnavailable(
            f"no Databricks credentials for the LLM ({first})",
            "set DATABRICKS_HOST and DATABRICKS_TOKEN, configure a profile in ~/.databrickscfg, or run in a "
            "Databricks job/notebook; or use --llm anthropic / --llm none",
        ) from None
    finally:
        sdk_log.setLevel(level)
    authorization = headers.get("Authorization") if isinstance(headers, dict) else None
    if not host or not authorization:
        raise LLMUnavailable(
            "Databricks auth gave no workspace host or token for the LLM",
            "set DATABRICKS_HOST and DATABRICKS_TOKEN (or a profile)",
        )
    return host, authorization


def _databricks(config: SessionConfig) -> LLMClient:
    import anthropic

    host, authorization = databricks_auth(config.tracking_uri, config.llm_timeout_s)
    endpoint = Endpoint(
        "databricks", f"{host}/serving-endpoints/anthropic", resolve_model("databricks", config.llm_model)
    )
    sdk = anthropic.Anthropic(
        api_key="unused",  # the serving endpoint authenticates with the workspace bearer token
        base_url=endpoint.base_url,
        default_headers={"Authorization": authorization},
        max_retries=0,  # retries are ours: bounded, with backoff, inside the session's time budget
        timeout=_timeout(config),
    )
    token = authorization.split(" ", 1)[-1]
    return LLMClient(sdk, endpoint, config.llm_timeout_s, secrets=(authorization, token))


def _anthropic(config: SessionConfig) -> LLMClient:
    import anthropic

    key = os.environ.get("ANTHROPIC_API_KEY") or ""
    if not key.strip():
        raise LLMUnavailable(
            "ANTHROPIC_API_KEY is not set", "export ANTHROPIC_API_KEY, or use --llm databricks / --llm none"
        )
    base_url = (os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com").rstrip("/")
    endpoint = Endpoint("anthropic", base_url, resolve_model("anthropic", config.llm_model))
    sdk = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0, timeout=_timeout(config))
    return LLMClient(sdk, endpoint, config.llm_timeout_s, secrets=(key,))
