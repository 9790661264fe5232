"""Read an experiment fast and in bounded memory: a span-free index pass, then sharded digesting.

1. **Index** (`scan_index`): page through trace infos without spans (cheap: no span JSON) and
   keep only each trace's timestamp and status. This counts the traces, gives population
   statistics over *all* of them, and lets the work be split.
2. **Plan** (`plan_shards`): cut the timeline into shards of about one page each. With more
   traces than `--max-traces`, pick shards spread evenly over time and add error traces if the
   picked shards under-represent them, so the sample is stratified by time and status rather
   than "the newest N".
3. **Digest** (`read_digests`): worker processes page their shards with timestamp-range filters
   and return small digests; the parent analyzes while they read. Digesting (span JSON, features,
   redaction) costs more than reading, and it parallelizes across cores where threads cannot.

Digests come back sorted by (timestamp desc, trace id) per shard, and shards in timeline order,
so the analysis does not depend on which worker finished first.
"""

from __future__ import annotations

import bisect
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from trace2eval.traces.source import (
    SkippedTraces,
    TraceQuery,
    digest_or_skip,
    is_evaluation_trace,
    is_unreadable,
    iter_trace_pages,
)

INDEX_PAGE = 500  # span-free pages are small, but an `mlflow server` rejects max_results above 500
SHARD_SIZE = 500  # traces per shard: a page of full traces per worker call
PARALLEL_FROM = 1500  # below this, worker start-up costs more than it saves
ERROR_SHARE = 0.1  # in a sample, at least this share of errors when the population has them


@dataclass
class TraceIndex:
    """One small tuple per trace, plus population statistics for the whole experiment."""

    timestamps: list[int] = field(default_factory=list)
    errors: list[bool] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    tokens: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class Shard:
    lo_ms: int  # inclusive
    hi_ms: int  # exclusive
    status: str | None = None  # "ERROR" to read only the error traces of the range


@dataclass
class ReadPlan:
    shards: list[Shard]
    total: int
    expected: int
    note: str


def scan_index(client, query: TraceQuery) -> TraceIndex:
    """Span-free pass over every matching trace (no --max-traces cap: the sample needs them all)."""
    index = TraceIndex()
    unbounded = TraceQuery(query.experiment_id, query.filter_string, query.since_ms, None)
    for page in iter_trace_pages(client, unbounded, page_size=INDEX_PAGE, include_spans=False):
        for trace in page:
            if is_evaluation_trace(trace):
                continue
            info = trace.info
            state = str(getattr(info.state, "value", info.state))
            index.timestamps.append(_count(info.request_time) or 0)
            index.errors.append(state == "ERROR")
            index.statuses[state] += 1
            index.durations.append(float(_count(info.execution_duration) or 0))
            try:
                usage = getattr(info, "token_usage", None) or {}
            except Exception:  # trace metadata that is not JSON: no usage, as for a trace without it
                usage = {}
            total = _count(usage.get("total_tokens")) if isinstance(usage, dict) else None
            if total:
                index.tokens.append(total)
    return index


def _count(value: Any) -> int | None:
    """A whole number from trace metadata, or None for what is not one (NaN, Infinity, text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _ranges(timestamps: list[int], size: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) timestamp ranges of about `size` traces each (ties stay together)."""
    ordered = sorted(timestamps)
    if not ordered:
        return []
    bounds = [ordered[0]]
    for i in range(size, len(ordered), size):
        if ordered[i] > bounds[-1]:
            bounds.append(ordered[i])
    bounds.append(ordered[-1] + 1)
    return list(zip(bounds[:-1], bounds[1:]))


def plan_shards(index: TraceIndex, max_traces: int | None, seed: int = 0, shard_size: int = SHARD_SIZE) -> ReadPlan:
    ranges = _ranges(index.timestamps, shard_size)
    total = index.count
    if max_traces is None or total <= max_traces:
        return ReadPlan([Shard(lo, hi) for lo, hi in ranges], total, total, f"all {total} traces matching the query")

    # Stratified by time: shards spread evenly over the timeline (not just the newest).
    per_shard = max(1, total / max(len(ranges), 1))
    wanted = max(1, int(max_traces * (1 - ERROR_SHARE) / per_shard))
    step = len(ranges) / wanted
    rng = random.Random(seed)
    offset = rng.random() * step
    picked = sorted({min(len(ranges) - 1, int(offset + i * step)) for i in range(wanted)})
    shards = [Shard(*ranges[i]) for i in picked]
    expected = int(len(picked) * per_shard)
    note = (
        f"a sample of about {expected} of {total} traces: {len(picked)} time windows of ~{shard_size} "
        f"spread evenly over the whole period"
    )

    # Stratified by status: errors from the windows not picked, up to ERROR_SHARE of the budget.
    error_ts = sorted(ts for ts, err in zip(index.timestamps, index.errors) if err)
    if error_ts:

        def errors_in(lo: int, hi: int) -> int:
            return bisect.bisect_left(error_ts, hi) - bisect.bisect_left(error_ts, lo)

        picked_set = set(picked)
        in_sample = sum(errors_in(*ranges[i]) for i in picked_set)
        room = int(max_traces * ERROR_SHARE) - in_sample
        extra = [r for i, r in enumerate(ranges) if i not in picked_set and errors_in(*r)]
        rng.shuffle(extra)
        added = 0
        for lo, hi in extra:
            if added >= room:
                break
            shards.append(Shard(lo, hi, status="ERROR"))
            added += errors_in(lo, hi)
        expected += added
        note += f", plus {added} error traces from other windows ({len(error_ts)} errors in all)"
    return ReadPlan(shards, total, expected, note)


def _shard_query(query: TraceQuery, shard: Shard) -> TraceQuery:
    parts = [p for p in (query.filter_string,) if p]
    parts.append(f"attributes.timestamp_ms >= {shard.lo_ms} AND attributes.timestamp_ms < {shard.hi_ms}")
    if shard.status:
        parts.append(f"attributes.status = '{shard.status}'")
    return TraceQuery(query.experiment_id, " AND ".join(parts), query.since_ms, None)


def _digest_shard(args: tuple) -> list[dict[str, Any]]:
    """Worker: one shard's traces as digests (runs in a child process, or inline).

    A trace that cannot be read or digested comes back as a skip record (`is_unreadable`).
    """
    tracking_uri, query, shard, label_name = args
    from trace2eval.traces.source import open_client_unchecked

    client = open_client_unchecked(tracking_uri)
    digests = [
        digest_or_skip(t, label_name)
        for page in iter_trace_pages(client, _shard_query(query, shard), SHARD_SIZE)
        for t in page
        if not is_evaluation_trace(t)
    ]
    digests.sort(key=lambda d: (-int(d.get("timestamp_ms") or 0), str(d.get("trace_id"))))
    return digests


def _init_worker() -> None:
    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()


def workers_for(count: int) -> int:
    if count < PARALLEL_FROM:
        return 1
    return max(1, min(int(os.environ.get("TRACE2EVAL_WORKERS", 0) or (os.cpu_count() or 1)), 8))


def start_method() -> str:
    """How worker processes start.

    Fork on Linux: workers start in milliseconds with MLflow already imported, where spawn
    re-imports it (~3 s); callers start no threads before the first digest arrives, so no lock
    is forked held. Not while a Spark session lives in this process (a Databricks
    notebook, the Spark source): a forked child shares its py4j socket or gRPC channel, and
    MLflow's client consults the session, so the child corrupts the parent's connection.
    """
    if sys.platform.startswith("linux") and not _spark_is_live():
        return "fork"
    return "spawn"


def _spark_is_live() -> bool:
    if "pyspark" not in sys.modules:  # (MlflowClient imports pyspark when it is installed)
        return False
    try:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        return (
            SparkSession.getActiveSession() is not None
            or getattr(SparkContext, "_active_spark_context", None) is not None
        )
    except Exception:  # cannot tell: the safe choice
        return True


def read_digests(
    tracking_uri: str,
    query: TraceQuery,
    plan: ReadPlan,
    label_name: str | None = None,
    workers: int | None = None,
    method: str | None = None,
    skipped: SkippedTraces | None = None,
) -> Iterator[dict[str, Any]]:
    """Digests of every trace in the plan that could be read; the others are counted in `skipped`."""
    for digest in _read_all(tracking_uri, query, plan, label_name, workers, method):
        if is_unreadable(digest):
            if skipped is not None:
                skipped.add(digest)
            continue
        yield digest


def _read_all(
    tracking_uri: str,
    query: TraceQuery,
    plan: ReadPlan,
    label_name: str | None,
    workers: int | None,
    method: str | None,
) -> Iterator[dict[str, Any]]:
    """Digests and skip records of every trace in the plan, newest shard first, at most 2 shards in
    flight per worker."""
    jobs = [
        (tracking_uri, query, shard, label_name)
        for shard in sorted(plan.shards, key=lambda s: (-s.hi_ms, s.status or ""))
    ]
    workers = workers or workers_for(plan.expected)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield from _digest_shard(job)
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context(method or start_method()), initializer=_init_worker
    ) as pool:
        pending: dict[int, Any] = {}
        done: dict[int, list[dict[str, Any]]] = {}
        next_submit, next_yield = 0, 0
        while next_yield < len(jobs):
            while next_submit < len(jobs) and len(pending) < 2 * workers:
                pending[next_submit] = pool.submit(_digest_shard, jobs[next_submit])
                next_submit += 1
            finished, _ = wait(list(pending.values()), return_when=FIRST_COMPLETED)
            for i, future in list(pending.items()):
                if future in finished:
                    done[i] = future.result()
                    del pending[i]
            while next_yield in done:  # hand results on in plan order: deterministic analysis
                yield from done.pop(next_yield)
                next_yield += 1
