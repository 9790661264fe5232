"""`state/llm_sessions.json`: one record per LLM session — outcome, tokens, proposals kept and refused.

It is what the run-wide token budget is counted from, what `status` and the report show, and
where "LLM unavailable: <reason>" is written down. It never holds credentials: every text that
goes in has been scrubbed of the endpoint's secrets.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.session import Session

LEDGER = "llm_sessions.json"
Outcome = Literal["completed", "stopped", "unavailable", "skipped", "failed"]


class LLMSessionRecord(BaseModel):
    """One LLM session: which task, what it cost, what came of it."""

    task: str
    provider: str
    model: str
    endpoint: str | None = None  # URL the requests went to (never credentials)
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None
    outcome: Outcome
    reason: str | None = None  # why it stopped early, was skipped or was unavailable
    turns: int = 0
    usage: dict[str, int] = Field(default_factory=dict)
    tool_calls: dict[str, int] = Field(default_factory=dict)
    accepted: list[dict[str, Any]] = Field(default_factory=list)
    refused: list[dict[str, Any]] = Field(default_factory=list)
    applied: dict[str, Any] = Field(default_factory=dict)
    summary: str | None = None  # the model's own closing words, shortened
    trace_id: str | None = None  # MLflow trace of this session's calls (the generator's own trace)
    trace_experiment: str | None = None


def ledger_path(session: Session):
    return session.state_dir / LEDGER


def load(session: Session) -> list[LLMSessionRecord]:
    path = ledger_path(session)
    if not path.exists():
        return []
    return [LLMSessionRecord.model_validate(r) for r in read_json(path).get("sessions", [])]


def append(session: Session, record: LLMSessionRecord) -> None:
    records = load(session) + [record]
    totals = run_totals(records)
    write_json(ledger_path(session), {"totals": totals, "sessions": [r.model_dump(mode="json") for r in records]})


def run_totals(records: list[LLMSessionRecord]) -> dict[str, int]:
    keys = (
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "total_tokens",
        "chars_sent",
    )
    totals = {k: sum(int(r.usage.get(k, 0)) for r in records) for k in keys}
    totals["sessions"] = len(records)
    return totals


def tokens_used(session: Session) -> int:
    return run_totals(load(session))["total_tokens"]


def recent_unavailability(session: Session, within_s: float) -> LLMSessionRecord | None:
    """The last session that found the LLM unavailable, if that was less than `within_s` ago.

    Later sessions of the same run skip the model instead of each waiting out its own retries:
    with the endpoint down, a whole run still ends within minutes.
    """
    now = datetime.now(timezone.utc)
    for record in reversed(load(session)):
        if record.outcome == "skipped":
            continue
        if record.outcome != "unavailable":
            return None
        when = datetime.fromisoformat(record.finished_at or record.started_at)
        if (now - when).total_seconds() <= within_s:
            return record
        return None
    return None
