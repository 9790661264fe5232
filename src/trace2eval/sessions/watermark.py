"""The watermark: how far the suite has read the experiment's traces.

A nightly run reads only traces newer than the watermark of the last *successful* run. Traces are
timestamped when the request started, so one that was still running (or still being exported)
at the last run can land with a timestamp just below the watermark: each run therefore re-reads an
overlap window below the watermark and skips the trace ids it already processed there.

The watermark advances only when a run's suite passed validation and was published; a failed run
leaves it where it was, so the next night retries the same traces.

A trace stamped in the future (a client with a wrong clock, a forged timestamp) must not carry the
watermark with it: every real trace after it would be ignored. Timestamps beyond now plus a small
clock-skew allowance are clamped to now when the watermark moves, the run says so, and the ids of
such traces are remembered (`future`) so they are not read again as new every night.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from trace2eval.sessions.plan import now

MAX_RECENT_IDS = 20_000  # ids kept for the overlap window; far more than a window normally holds
CLOCK_SKEW_MS = 5 * 60_000  # how far ahead of this machine's clock a trace may be and still count as "now"
MAX_FUTURE_IDS = 1_000  # future-dated ids remembered; a store with more has a clock problem the note names


def now_ms() -> int:
    return int(time.time() * 1000)


class Watermark(BaseModel):
    timestamp_ms: int  # newest trace timestamp a successful run has processed
    overlap_ms: int
    recent: dict[str, int] = Field(default_factory=dict)  # trace id → timestamp, processed, inside the overlap
    future: dict[str, int] = Field(default_factory=dict)  # trace id → timestamp, processed, dated after the run
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
    clamped: dict[str, int] = field(default_factory=dict)  # trace id → timestamp, of those dated in the future
    rewound_from_ms: int | None = None  # a previous watermark that was in the future, and was not trusted

    def accepts(self, trace_id: str, timestamp_ms: int) -> bool:
        if trace_id in self.skip_ids:
            self.skipped += 1
            return False
        self.seen[trace_id] = int(timestamp_ms or 0)
        return True

    def advanced(self, session_id: str, at_ms: int | None = None) -> Watermark:
        """The watermark once this run's traces are in the suite; `at_ms` is "now" (tests pass it)."""
        previous = self.previous
        at_ms = now_ms() if at_ms is None else int(at_ms)
        limit = at_ms + CLOCK_SKEW_MS
        self.clamped = {tid: ts for tid, ts in self.seen.items() if ts > limit}
        # Future-dated traces count as read now: the watermark moves to now, not to their date.
        seen = {tid: min(ts, at_ms) if tid in self.clamped else ts for tid, ts in self.seen.items()}
        start = previous.timestamp_ms if previous else 0
        if self.rewound_from_ms is not None:
            start = self.since_ms + self.overlap_ms if self.since_ms is not None else 0
        newest = max([min(start, limit), *seen.values()])
        floor = newest - self.overlap_ms
        earlier = previous.recent if previous else {}
        candidates = {**{tid: min(ts, at_ms) for tid, ts in earlier.items()}, **seen}
        inside = sorted(((tid, ts) for tid, ts in candidates.items() if ts > floor), key=lambda item: item[1])
        recent = dict(inside[-MAX_RECENT_IDS:])
        # Remembered until the clock passes their date: until then every run reads them again.
        future = {
            tid: ts
            for tid, ts in {**(previous.future if previous else {}), **earlier, **self.clamped}.items()
            if ts > limit
        }
        future = dict(sorted(future.items(), key=lambda item: item[1])[:MAX_FUTURE_IDS])
        return Watermark(
            timestamp_ms=newest,
            overlap_ms=self.overlap_ms,
            recent=recent,
            future=future,
            session=session_id,
            updated_at=now(),
            runs=(previous.runs if previous else 0) + 1,
            traces_total=(previous.traces_total if previous else 0) + len(self.seen),
        )

    def clamp_note(self) -> str | None:
        """What a reviewer must hear of the clock: future-dated traces, or a watermark that was in the future."""
        parts = []
        if self.clamped:
            first_id, first_ts = min(self.clamped.items(), key=lambda item: item[1])
            parts.append(
                f"{len(self.clamped)} trace(s) are dated in the future (e.g. {first_id} at "
                f"{_iso(first_ts)}): the watermark moved to now, not to their date"
            )
        if self.rewound_from_ms is not None:
            parts.append(
                f"the previous watermark ({_iso(self.rewound_from_ms)}) was in the future; this run read "
                f"from {_iso(self.since_ms)} instead (when that watermark was written, minus the overlap)"
            )
        return "; ".join(parts) + "; check the agent's clock" if parts else None


def window_for(
    previous: Watermark | None, overlap_minutes: int, initial_since_ms: int | None, at_ms: int | None = None
) -> TraceWindow:
    """Read from the previous watermark (minus the overlap), or from `initial_since_ms` on the first run.

    A previous watermark in the future (written before timestamps were clamped) is not trusted:
    the run reads from when it was written instead, so the traces it hid are read again.
    """
    overlap_ms = int(overlap_minutes) * 60_000
    if previous is None:
        return TraceWindow(since_ms=initial_since_ms, overlap_ms=overlap_ms)
    at_ms = now_ms() if at_ms is None else int(at_ms)
    mark, rewound = previous.timestamp_ms, None
    if mark > at_ms + CLOCK_SKEW_MS:
        rewound, mark = mark, min(_parse_ms(previous.updated_at) or at_ms, at_ms)
    since = mark - overlap_ms
    if initial_since_ms is not None:
        since = max(since, initial_since_ms)
    return TraceWindow(
        since_ms=since,
        overlap_ms=overlap_ms,
        skip_ids=frozenset(previous.recent) | frozenset(previous.future),
        previous=previous,
        rewound_from_ms=rewound,
    )


def _parse_ms(stamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _iso(ms: int | None) -> str:
    if ms is None:
        return "the beginning"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def describe(window: TraceWindow) -> dict[str, Any]:
    return {
        "since_ms": window.since_ms,
        "previous_watermark_ms": window.previous.timestamp_ms if window.previous else None,
        "overlap_minutes": window.overlap_ms // 60_000,
        "new_traces": len(window.seen),
        "already_processed": window.skipped,
        "future_dated_traces": len(window.clamped),
        "future_dated_examples": sorted(window.clamped)[:20],
        "rewound_from_ms": window.rewound_from_ms,
    }
