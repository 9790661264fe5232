"""One request to the model, with bounded retries and backoff inside the session's time budget.

Transient faults (connection refused, timeouts, 429, 5xx/529, a garbled response) are retried a
few times with exponential backoff and jitter, honouring `retry-after`. Faults that retrying
cannot fix (bad credentials, unknown model, a request the endpoint rejects) end the session at
once. Either way the caller gets `LLMUnavailable` with a reason a person can act on.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from trace2eval.errors import LLMUnavailable
from trace2eval.llm.clients import LLMClient

MAX_ATTEMPTS = 4  # first try + 3 retries for 429/5xx/connection errors
MAX_TIMEOUTS = 2  # a hanging endpoint usually keeps hanging: one retry, then give up
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 20.0
RETRY_AFTER_CAP_S = 30.0
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


class RequestRejected(Exception):
    """HTTP 400: the endpoint refused this request's content (not an outage)."""


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return min(float(value), RETRY_AFTER_CAP_S) if value is not None else None
    except ValueError:
        return None


def _error_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("message")
        if message:
            return str(message)[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def backoff_s(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (1-based): the server's retry-after if it sent one,
    else exponential with full jitter, capped."""
    if retry_after is not None:
        return max(0.0, retry_after)
    rng = rng or random
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + rng.random() / 2)


def send(
    client: LLMClient, request: dict[str, Any], deadline: float, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """`messages.create(**request)` with retries; returns the SDK's Message.

    Raises LLMUnavailable (reason scrubbed of credentials) or RequestRejected (HTTP 400).
    """
    import anthropic

    attempts = timeouts = 0
    where = client.endpoint.messages_url
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise LLMUnavailable(
                f"the session's time budget ran out waiting for {where}",
                "raise --llm-session-seconds, or check the endpoint's health",
            )
        retry_after = None
        try:
            return client.sdk.messages.create(**request, timeout=min(client.timeout_s, remaining))
        except anthropic.APITimeoutError:
            timeouts += 1
            reason = f"no response from {where} within {min(client.timeout_s, remaining):.0f} s"
            if timeouts >= MAX_TIMEOUTS:
                raise LLMUnavailable(
                    client.scrub(f"{reason} ({timeouts} attempts)"),
                    "check the serving endpoint is up (raise --llm-timeout for slow endpoints)",
                ) from None
        except anthropic.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            reason = f"cannot connect to {where} ({type(cause).__name__}: {str(cause)[:200]})"
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            message = _error_message(exc)
            if status in (401, 403):
                raise LLMUnavailable(
                    client.scrub(f"{where} refused the credentials (HTTP {status}: {message})"),
                    "check the token/API key and that it may query this endpoint",
                ) from None
            if status == 404:
                raise LLMUnavailable(
                    client.scrub(
                        f"model or endpoint {client.endpoint.model!r} not found at {where} (HTTP 404: {message})"
                    ),
                    "check --llm-model: on Databricks it is the serving endpoint name",
                ) from None
            if status == 400 or status == 413 or status == 422:
                raise RequestRejected(client.scrub(f"HTTP {status}: {message}")) from None
            if status not in RETRYABLE_STATUS and status < 500:
                raise LLMUnavailable(client.scrub(f"{where} answered HTTP {status}: {message}")) from None
            reason = f"{where} answered HTTP {status}: {message}"
            retry_after = _retry_after(exc)
        except (anthropic.APIResponseValidationError, ValueError) as exc:
            reason = f"malformed response from {where} ({type(exc).__name__}: {str(exc)[:150]})"
        if attempts >= MAX_ATTEMPTS:
            raise LLMUnavailable(
                client.scrub(f"{reason} (after {attempts} attempts)"),
                "check the serving endpoint's health and rate limits, then resume the session",
            )
        wait = backoff_s(attempts, retry_after)
        if time.monotonic() + wait >= deadline - 1:
            raise LLMUnavailable(
                client.scrub(f"{reason}; no time left in the session budget to retry"),
                "raise --llm-session-seconds, or check the endpoint's health",
            )
        sleep(wait)
