"""TraceDigest: the compact, redacted record of one trace that analysis works on."""

from __future__ import annotations

from typing import Any

from trace2eval.traces.features import trace_features
from trace2eval.traces.redact import redact


def digest_trace(trace: Any) -> dict[str, Any]:
    """A few KB at most, whatever the trace size: previews are truncated, lists are bounded."""
    info = trace.info
    digest = {
        "trace_id": info.trace_id,
        "timestamp_ms": int(getattr(info, "request_time", 0) or 0),
        **trace_features(trace),
    }
    return redact(digest)
