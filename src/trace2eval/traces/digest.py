"""TraceDigest: the compact, redacted record of one trace that analysis works on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trace2eval.traces.features import trace_features
from trace2eval.traces.redact import contains_secret, redact, redact_text


def digest_trace(trace: Any, label_name: str | None = None) -> dict[str, Any]:
    """A few KB at most, whatever the trace size: previews are truncated, lists are bounded.

    `label_name` names a yes/no feedback (user thumbs, reviewer labels) to carry along for
    meta-evaluation only: findings and scorers are never derived from it.
    """
    info = trace.info
    session = session_id(info)
    digest = {
        "trace_id": info.trace_id,
        "timestamp_ms": int(getattr(info, "request_time", 0) or 0),
        # Texts cut to a preview or normalized (lower-cased) are redacted whole, before that. A turn
        # of a conversation keeps what grounding its writes across turns needs (hashes, no text).
        **trace_features(trace, scrub=redact_text, turn=session is not None),
    }
    # The rest is kept whole: one search over the serialized digest covers it, and nearly no trace
    # holds a secret, so most digests are ruled out by that one search.
    serialized = json.dumps(digest, ensure_ascii=False, default=str)
    # JSON escapes whitespace; patterns that need real whitespace (e.g. "Bearer <token>") see it again.
    serialized = serialized.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    if contains_secret(serialized):
        digest = redact(digest)
    if session:  # only where the agent set one: digests of session-less traces stay as they were
        digest["session"] = session
    if label_name:
        digest["label"] = read_label(info, label_name)
    return digest


SESSION_KEY = "mlflow.trace.session"  # MLflow's TraceMetadataKey.TRACE_SESSION: one conversation's traces
MAX_SESSION_CHARS = 256


def session_id(info: Any) -> str | None:
    """The conversation a trace belongs to (`mlflow.trace.session` metadata), None when it has none."""
    metadata = getattr(info, "trace_metadata", None) or {}
    value = metadata.get(SESSION_KEY) if isinstance(metadata, dict) else None
    if value is None or not str(value).strip():
        return None
    # Kept as written (not redacted): the evaluation finds the session's traces by this exact id.
    return str(value).strip()[:MAX_SESSION_CHARS]


@dataclass
class Conversation:
    """A conversation's digest, built from its turns' digests one at a time (never the traces).

    A trace without session metadata is a conversation of one turn, keyed by its trace id.
    """

    key: str
    session: str | None  # None: a trace without session metadata
    turns: list[tuple[int, str]] = field(default_factory=list)  # (timestamp_ms, trace_id)
    first_request: str = ""
    _first_ts: int | None = None

    def add(self, digest: dict[str, Any]) -> None:
        ts = int(digest.get("timestamp_ms") or 0)
        self.turns.append((ts, str(digest["trace_id"])))
        # The conversation's request is its first user request: later turns ("Yes, go ahead")
        # say little about what the conversation is about.
        if self._first_ts is None or ts < self._first_ts:
            self._first_ts = ts
            self.first_request = str(digest.get("request") or "")

    @property
    def trace_ids(self) -> list[str]:
        """The turns in time order (ties by trace id: the same order whatever order they came in)."""
        return [tid for _, tid in sorted(self.turns)]


class Conversations:
    """Groups digests into conversations as they stream by: a few ids per trace are kept."""

    def __init__(self) -> None:
        self.by_key: dict[str, Conversation] = {}
        self.by_trace: dict[str, str] = {}

    def add(self, digest: dict[str, Any]) -> Conversation:
        session = digest.get("session")
        key = f"session:{session}" if session else f"trace:{digest['trace_id']}"
        conversation = self.by_key.get(key)
        if conversation is None:
            conversation = self.by_key[key] = Conversation(key, session)
        conversation.add(digest)
        self.by_trace[str(digest["trace_id"])] = key
        return conversation

    @property
    def has_sessions(self) -> bool:
        return any(c.session for c in self.by_key.values())

    def of(self, trace_id: str) -> Conversation | None:
        key = self.by_trace.get(trace_id)
        return self.by_key[key] if key else None


_GOOD = {"true", "yes", "pass", "passed", "good", "correct", "1", "up", "thumbs_up", "positive"}
_BAD = {"false", "no", "fail", "failed", "bad", "incorrect", "0", "down", "thumbs_down", "negative"}


def read_label(info: Any, name: str) -> bool | None:
    """The newest valid feedback called `name`: True = good, False = bad, None = absent/unclear."""
    found = None
    for a in getattr(info, "assessments", None) or []:
        if (
            getattr(a, "name", None) != name
            or getattr(a, "feedback", None) is None
            or getattr(a, "valid", True) is False
        ):
            continue
        value = a.feedback.value
        if isinstance(value, bool):
            found = value
        elif isinstance(value, (int, float)):
            found = value > 0
        elif isinstance(value, str) and value.strip().lower() in _GOOD | _BAD:
            found = value.strip().lower() in _GOOD
    return found
