"""TraceDigest: the compact, redacted record of one trace that analysis works on."""

from __future__ import annotations

import json
from typing import Any

from trace2eval.traces.features import trace_features
from trace2eval.traces.redact import contains_secret, redact, redact_text


def digest_trace(trace: Any, label_name: str | None = None) -> dict[str, Any]:
    """A few KB at most, whatever the trace size: previews are truncated, lists are bounded.

    `label_name` names a yes/no feedback (user thumbs, reviewer labels) to carry along for
    meta-evaluation only: findings and scorers are never derived from it.
    """
    info = trace.info
    digest = {
        "trace_id": info.trace_id,
        "timestamp_ms": int(getattr(info, "request_time", 0) or 0),
        # Texts cut to a preview or normalized (lower-cased) are redacted whole, before that.
        **trace_features(trace, scrub=redact_text),
    }
    # The rest is kept whole: one search over the serialized digest covers it, and nearly no trace
    # holds a secret, so most digests are ruled out by that one search.
    serialized = json.dumps(digest, ensure_ascii=False, default=str)
    # JSON escapes whitespace; patterns that need real whitespace (e.g. "Bearer <token>") see it again.
    serialized = serialized.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    if contains_secret(serialized):
        digest = redact(digest)
    if label_name:
        digest["label"] = read_label(info, label_name)
    return digest


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
