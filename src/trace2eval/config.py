"""One settings object for a session, built from CLI flags, environment variables or job parameters.

It is saved as `state/config.json` in the session folder so every task (a fresh process, maybe on
another machine) reads the same settings. Secrets never go in here: credentials come from the
environment or the Databricks auth chain at the moment they are needed. A tracking URI that
carries a password (`postgresql://user:pass@host/db`) is stored masked (`user:***@`); the real
one stays in memory, and a later process gets it back from the environment (see `real_uri`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Literal, cast

from pydantic import BaseModel, Field, field_serializer, field_validator

from trace2eval.errors import Trace2EvalError
from trace2eval.spark.location import check_source
from trace2eval.traces.redact import mask_uri

LLMChoice = Literal["none", "databricks", "anthropic"]
DEFAULT_LLM_MODEL = "databricks-claude-opus-4-5"
DEFAULT_MAX_TRACES = 10_000
DEFAULT_LLM_TRACE_EXPERIMENT = "trace2eval-llm-sessions"


class SessionConfig(BaseModel):
    """Everything a task needs to know besides the state files."""

    experiment_id: str
    tracking_uri: str
    source: str = "mlflow"  # "mlflow" or "uc:<catalog>.<schema>[.<prefix>]"
    filter_string: str | None = None
    since_ms: int | None = None  # only traces newer than this (epoch ms)
    max_traces: int | None = DEFAULT_MAX_TRACES
    labels: str | None = None  # name of a boolean feedback assessment to meta-evaluate against
    llm: LLMChoice = "none"
    llm_model: str = DEFAULT_LLM_MODEL
    require_llm: bool = False
    judge_model: str | None = None
    # LLM sessions (ignored with llm="none"). A session is one task's conversation with the model;
    # a run is every session of this session folder. Budgets stop a session early, never fail it.
    llm_max_turns: int = Field(default=20, ge=1, le=200)
    llm_session_tokens: int = Field(default=400_000, ge=1_000)  # input + output tokens, one session
    llm_run_tokens: int = Field(default=1_200_000, ge=1_000)  # input + output tokens, all sessions
    llm_timeout_s: float = Field(default=120.0, gt=0)  # one request to the model
    llm_session_seconds: int = Field(default=600, ge=5)  # wall time of one session, retries included
    llm_max_output_tokens: int = Field(default=4096, ge=256, le=64_000)
    # Where the generator's own LLM calls are traced ("" turns tracing off); same tracking store.
    llm_trace_experiment: str | None = DEFAULT_LLM_TRACE_EXPERIMENT
    max_fix_attempts: int = Field(default=3, ge=0, le=10)
    validate_timeout_s: int = Field(default=900, ge=1)
    seed: int = 0
    # Nightly runs: the living suite this session grows (sessions/suite.py); None = a one-off session.
    suite_dir: str | None = None
    watermark_overlap_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)  # re-read for late traces
    max_suite_rows: int = Field(default=300, ge=10)

    @field_validator("tracking_uri")
    @classmethod
    def _real_tracking_uri(cls, v: str) -> str:
        return real_uri(v)

    @field_serializer("tracking_uri", when_used="json")
    def _masked_tracking_uri(self, v: str) -> str:
        return mask_uri(v)  # config.json, and anything else that writes the settings as JSON

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI as it may be printed or written: without its password."""
        return mask_uri(self.tracking_uri)

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        try:
            return check_source(v)
        except Trace2EvalError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("experiment_id")
    @classmethod
    def _experiment_id_not_blank(cls, v: str) -> str:
        if not str(v).strip():
            raise ValueError("experiment id is empty")
        return str(v).strip()

    @classmethod
    def from_inputs(
        cls,
        experiment_id: str,
        tracking_uri: str | None = None,
        *,
        llm: LLMChoice | str = "none",
        llm_model: str | None = None,
        judge_model: str | None = None,
        max_traces: int | None = None,
        filter_string: str | None = None,
        since: str | None = None,
        labels: str | None = None,
        require_llm: bool = False,
        max_fix_attempts: int = 3,
        source: str = "mlflow",
        **llm_settings,
    ) -> "SessionConfig":
        """The settings from what a person typed (CLI flags, job parameters): blanks mean "not set",
        `since` is `7d`/an ISO date/epoch ms, a relative sqlite path is made absolute, and a bad
        value is a `Trace2EvalError` naming it. `llm_settings` are the llm_* fields."""
        if llm not in ("none", "databricks", "anthropic"):
            raise Trace2EvalError(f"unknown --llm {llm!r}", "use none, databricks or anthropic")
        if "llm_trace_experiment" in llm_settings:
            llm_settings["llm_trace_experiment"] = (llm_settings["llm_trace_experiment"] or "").strip() or None
        source = check_source(source)  # a bad --source is reported as itself, not as "invalid settings"
        try:
            return cls(
                experiment_id=experiment_id,
                tracking_uri=resolve_tracking_uri(tracking_uri),
                llm=cast(LLMChoice, llm),
                llm_model=llm_model or DEFAULT_LLM_MODEL,
                judge_model=judge_model or None,
                max_traces=max_traces or None,
                filter_string=filter_string or None,
                since_ms=parse_since(since),
                labels=labels or None,
                require_llm=require_llm,
                max_fix_attempts=max_fix_attempts,
                source=source,
                **llm_settings,
            )
        except ValueError as exc:
            raise Trace2EvalError(f"invalid settings: {exc}") from None


def resolve_tracking_uri(uri: str | None) -> str:
    """Make sqlite paths absolute so the generated run_eval.py works from any folder."""
    if not uri:
        import mlflow

        uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///") :]
        if path != ":memory:":
            uri = "sqlite:///" + str(Path(path).resolve())
    return uri


# Real URIs behind their masked form, for this process: a session created here keeps connecting
# with the password although config.json holds only `user:***@`.
_REAL_URIS: dict[str, str] = {}
URI_ENV_VARS = ("TRACE2EVAL_TRACKING_URI", "MLFLOW_TRACKING_URI")


def real_uri(uri: str) -> str:
    """The URI with its password: remembered when given in full, looked up when given masked.

    A masked URI is matched with one this process saw or one in TRACE2EVAL_TRACKING_URI /
    MLFLOW_TRACKING_URI; when neither has it, it stays masked and connecting fails with a clear
    error (`trace2eval.traces.source.open_client`).
    """
    masked = mask_uri(uri)
    if masked != uri:
        _REAL_URIS[masked] = uri
        return uri
    if "***" not in uri:
        return uri
    if uri in _REAL_URIS:
        return _REAL_URIS[uri]
    for name in URI_ENV_VARS:
        candidate = os.environ.get(name, "")
        if candidate and candidate != uri and mask_uri(candidate) == uri:
            _REAL_URIS[uri] = candidate
            return candidate
    return uri


def uri_lacks_secret(uri: str) -> bool:
    """A masked URI whose password this process does not know."""
    return "***" in uri and mask_uri(uri) == uri and real_uri(uri) == uri


_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None, now: datetime | None = None) -> int | None:
    """`24h`, `7d`, `30m`, `2w`, an ISO date/time, or epoch milliseconds → epoch milliseconds."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    now = now or datetime.now(timezone.utc)
    if m := _RELATIVE.match(text):
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return int((now - delta).timestamp() * 1000)
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Trace2EvalError(
            f"cannot read --since {text!r}",
            "use a duration like 24h / 7d, an ISO date like 2026-01-31, or epoch milliseconds",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)
