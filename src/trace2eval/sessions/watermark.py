"""The watermark: how far the suite has read the experiment's traces.

A nightly run reads only traces newer than the watermark of the last *successful* run. Traces are
timestamped when the request started, so one that was still running (or still being exported)
at the last run can land with a timestamp just below the watermark: each run therefore re-reads an
overlap window below the watermark and skips the trace ids it already processed there.

The watermark advances only when a run's suite passed validation and was published; a failed run
leaves it where it was, so the next night retries the same traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from trace2eval.sessions.plan import now

MAX_RECENT_IDS = 20_000  # ids kept for the overlap window; far more than a window normally holds


class Watermark(BaseModel):
    timestamp_ms: int  # newest trace timestamp a successful run has processed
    overlap_ms: int
    recent: dict[str, int] = Field(default_factory=dict)  # trace id → timestamp, processed, inside the overlap
    session: str | None = None
    updated_at: str | None = None
    runs: int = 0
    traces_total: int = 0


@dataclass
class TraceWindow:
    """Which traces a run reads: newer than `since_ms`, minus ids already processed."""

    since_ms: int | None
    overlap_ms: int
    skip_ids: frozenset[str] = frozenset()
    previous: Watermark | None = None
    seen: dict[str, int] = field(default_factory=dict)  # trace id → timestamp, of traces read now
    skipped: int = 0

    def accepts(self, trace_id: str, timestamp_ms: int) -> bool:
        if trace_id in self.skip_ids:
            self.skipped += 1
            return False
        self.seen[trace_id] = int(timestamp_ms or 0)
        return True

    def advanced(self, session_id: str) -> Watermark:
        """The watermark once this run's traces are in the suite."""
        previous = self.previous
        newest = max([previous.timestamp_ms if previous else 0, *self.seen.values()])
        floor = newest - self.overlap_ms
        candidates = {**(previous.recent if previous else {}), **self.seen}
        inside = sorted(((tid, ts) for tid, ts in candidates.items() if ts > floor), key=lambda item: item[1])
        recent = dict(inside[-MAX_RECENT_IDS:])
        return Watermark(
            timestamp_ms=newest, overlap_ms=self.overlap_ms, recent=recent,
            session=session_id, updated_at=now(), runs=(previous.runs if previous else 0) + 1,
            traces_total=(previous.traces_total if previous else 0) + len(self.seen),
        )


def window_for(previous: Watermark | None, overlap_minutes: int, initial_since_ms: int | None) -> TraceWindow:
    """Read from the previous watermark (minus the overlap), or from `initial_since_ms` on the first run."""
    overlap_ms = int(overlap_minutes) * 60_000
    if previous is None:
        return TraceWindow(since_ms=initial_since_ms, overlap_ms=overlap_ms)
    since = previous.timestamp_ms - overlap_ms
    if initial_since_ms is not None:
        since = max(since, initial_since_ms)
    return TraceWindow(since_ms=since, overlap_ms=overlap_ms, skip_ids=frozenset(previous.recent),
                       previous=previous)


def describe(window: TraceWindow) -> dict[str, Any]:
    return {
        "since_ms": window.since_ms,
        "previous_watermark_ms": window.previous.timestamp_ms if window.previous else None,
        "overlap_minutes": window.overlap_ms // 60_000,
        "new_traces": len(window.seen),
        "already_processed": window.skipped,
    }
