"""One settings object for a session, built from CLI flags, environment variables or job parameters.

It is saved as `state/config.json` in the session folder so every task (a fresh process, maybe on
another machine) reads the same settings. Secrets never go in here: credentials come from the
environment or the Databricks auth chain at the moment they are needed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from trace2eval.errors import Trace2EvalError
from trace2eval.spark.location import check_source

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
