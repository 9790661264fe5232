"""Analysis sections over every trace, as Spark DataFrame operations.

These count what the analyzer's population sections (`agent`, `trace_summary`, `error_patterns`,
`tool_usage`, `span_types`, `request_shapes`) and the initializer's `population` block need, and
hand the counts to the same describe functions (`analysis.sections`), so that on the same traces
the Spark engine writes the same `analysis.json` as the local engine. What makes the counts exact:

- Row order is the local engine's: newest first, ties by trace id. "First N evidence ids" and
  tie-breaks between equal counts ("first seen first") follow it.
- Percentiles are exact: Spark finds the values at the needed ranks (a histogram with running
  counts), the driver interpolates between them with the analyzer's own formula.
- Means of integers are exact sums; the one mean of floats (latency) is summed in row order
  the way Python's `sum()` does it, up to FOLD_LIMIT traces (beyond, a plain Spark sum).

The driver receives only small results: counts per group, a few values per percentile, at most
25 evidence ids per group.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from typing import Any

from trace2eval.analysis.sections import (
    EVIDENCE_IDS,
    TRACE_NO_EXCEPTION,
    AgentCounts,
    describe_agent,
    describe_error_pattern,
    describe_tool,
    describe_trace_summary,
)

FOLD_LIMIT = 2_000_000
QUANTILES = (50, 90, 95, 99)


def python_percentile(value_at, n: int, q: float) -> float:
    """`analysis.stats.percentile` on n sorted values, reading only the two it needs."""
    if n == 0:
        return 0.0
    if n == 1:
        return float(value_at(0))
    pos = (n - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(value_at(lo) + (value_at(hi) - value_at(lo)) * (pos - lo))


# ---------------------------------------------------------------------------------------------
# Exact order statistics


class RankedValues:
    """Values at selected ranks (0-based, ascending) of one group's distribution."""

    def __init__(self, n: int, runs: list[tuple[int, int, Any]]):
        self.n = n
        self.runs = sorted(runs)  # (first_rank, last_rank, value)

    def __call__(self, rank: int):
        for first, last, value in self.runs:
            if first <= rank <= last:
                return value
        raise KeyError(f"rank {rank} was not selected")  # a bug: the selection missed a rank

    def percentile(self, q: float) -> float:
        return python_percentile(self, self.n, q)

    @property
    def max(self):
        return self(self.n - 1)

    def as_int(self) -> "RankedValues":
        """The same values as ints (integer metrics travel as doubles to share one job)."""
        return RankedValues(self.n, [(a, b, int(v)) for a, b, v in self.runs])


def ranked_values(df, value: str, groups: list[str], quantiles=QUANTILES) -> dict[tuple, RankedValues]:
    """For each group, the values at the ranks the given percentiles (and the max) need."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    hist = df.groupBy(*groups, value).agg(F.count(F.lit(1)).alias("_c"))
    # Without groups these windows see one partition: fine, they run over distinct values only.
    by_group = Window.partitionBy(*groups) if groups else Window.partitionBy(F.lit(0))
    running = by_group.orderBy(value).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    whole = by_group
    hist = (
        hist.withColumn("_last", F.sum("_c").over(running) - 1)
        .withColumn("_n", F.sum("_c").over(whole))
        .withColumn("_first", F.col("_last") - F.col("_c") + 1)
    )
    wanted = []
    for q in quantiles:
        pos = (F.col("_n") - 1) * F.lit(q) / F.lit(100.0)
        wanted += [F.floor(pos), F.ceil(pos)]
    wanted.append(F.col("_n") - 1)
    hit = None
    for rank in wanted:
        cond = (F.col("_first") <= rank) & (rank <= F.col("_last"))
        hit = cond if hit is None else (hit | cond)
    picked = hist.where(hit).select(*groups, value, "_first", "_last", "_n").collect()
    out: dict[tuple, list] = defaultdict(list)
    sizes: dict[tuple, int] = {}
    for row in picked:
        key = tuple(row[g] for g in groups)
        out[key].append((row["_first"], row["_last"], row[value]))
        sizes[key] = row["_n"]
    return {k: RankedValues(sizes[k], runs) for k, runs in out.items()}


def python_sum_expr(values):
    """Spark expression folding an array of doubles left to right exactly like CPython's
    `sum()`: plain addition before 3.12, Neumaier-compensated from 3.12 on."""
    from pyspark.sql import functions as F

    if sys.version_info < (3, 12):
        return F.aggregate(values, F.lit(0.0).cast("double"), lambda acc, x: acc + x)
    start = F.struct(F.lit(0.0).cast("double").alias("f"), F.lit(0.0).cast("double").alias("c"))

    def step(acc, x):
        t = acc["f"] + x
        comp = F.when(F.abs(acc["f"]) >= F.abs(x), (acc["f"] - t) + x).otherwise((x - t) + acc["f"])
        return F.struct(t.alias("f"), (acc["c"] + comp).alias("c"))

    def finish(acc):
        finite = ~F.isnan(acc["c"]) & (F.abs(acc["c"]) != F.lit(float("inf")))
        return F.when((acc["c"] != 0) & finite, acc["f"] + acc["c"]).otherwise(acc["f"])

    return F.aggregate(values, start, step, finish)


def _summary(n: int, total: Any, ranked: RankedValues | None) -> dict[str, Any]:
    """`analysis.stats.summary` from a count, an exact sum and ranked values."""
    if not n:
        return {"count": 0}
    return {
        "count": n,
        "mean": round(total / n, 2),
        "p50": round(ranked.percentile(50), 2),
        "p90": round(ranked.percentile(90), 2),
        "p95": round(ranked.percentile(95), 2),
        "p99": round(ranked.percentile(99), 2),
        "max": round(ranked.max, 2),
    }


# ---------------------------------------------------------------------------------------------
# Groups with counts, first appearance and evidence, in one Spark job


def _order_key(*extra):
    """Row order: newest first, then trace id; `extra` orders events inside a trace."""
    from pyspark.sql import functions as F

    return F.struct((-F.col("timestamp_ms")).alias("_o1"), F.col("trace_id").alias("_o2"), *extra)


def grouped(df, keys: list[str], evidence: int = 0, sums: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per key, most common first (ties: first seen first): events, traces, sums, evidence ids.

    `df` has one row per event with `trace_id`, `timestamp_ms` and an `_order` column (row order,
    then position inside the trace). `events` counts rows, `traces` distinct traces, `sums` are
    extra additive columns, `evidence` the first distinct trace ids in row order.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sums = sums or {}
    per_trace = df.groupBy(*keys, "trace_id", "timestamp_ms").agg(
        F.count(F.lit(1)).alias("_n"),
        F.min("_order").alias("_first"),
        *[F.sum(column).alias(name) for name, column in sums.items()],
    )
    key = Window.partitionBy(*keys)
    rows = (
        per_trace.select(
            *keys,
            "trace_id",
            F.row_number().over(key.orderBy(F.desc("timestamp_ms"), F.asc("trace_id"))).alias("_rn"),
            F.sum("_n").over(key).alias("_events"),
            F.count(F.lit(1)).over(key).alias("_traces"),
            F.min("_first").over(key).alias("_key_first"),
            *[F.sum(name).over(key).alias(name) for name in sums],
        )
        .where(F.col("_rn") <= max(evidence, 1))
        .collect()
    )
    groups: dict[tuple, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["_rn"]):
        k = tuple(row[c] for c in keys)
        group = groups.get(k)
        if group is None:
            group = groups[k] = {
                "key": k,
                "events": row["_events"],
                "traces": row["_traces"],
                "first": row["_key_first"],
                "evidence": [],
                **{name: int(row[name] or 0) for name in sums},
            }
        if row["_rn"] <= evidence:
            group["evidence"].append(row["trace_id"])
    return sorted(groups.values(), key=lambda g: (-g["events"], g["first"]))


# ---------------------------------------------------------------------------------------------
# The sections


def population_sections(df, n: int) -> dict[str, Any]:
    """All population sections for the digest rows in `df` (n = its row count, > 0).

    The aggregates are independent Spark jobs: they are submitted together from a few threads,
    so small jobs overlap instead of queueing behind each other's scheduling latency.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.sql import functions as F

    traces = df.withColumn("_order", _order_key())
    tools = (
        df.select("trace_id", "timestamp_ms", F.explode("tools").alias("t"))
        .select("trace_id", "timestamp_ms", "t.*")
        .withColumn("_order", _order_key(F.col("pos").alias("_o3")))
    )
    jobs = {
        "tools": lambda: grouped(
            tools,
            ["name"],
            evidence=5,
            sums={
                "failures": F.when(~F.col("ok"), 1).otherwise(0),
                "nested_calls": F.when(F.col("nested"), 1).otherwise(0),
            },
        ),
        "shapes": lambda: grouped(traces, ["request_shape"], evidence=5),
        "statuses": lambda: grouped(traces, ["status"]),
        "roots": lambda: grouped(
            traces.withColumn("_root", F.when(F.col("root_name") != "", F.col("root_name")).otherwise("?")), ["_root"]
        ),
        "totals": lambda: _totals(df, n),
        "ranked": lambda: _order_statistics(df, tools),
        "info_totals": lambda: (
            df.agg(
                F.sum(F.coalesce("execution_ms", F.lit(0))).alias("latency"),
                F.sum(F.when(F.col("total_tokens") > 0, F.col("total_tokens"))).alias("tokens"),
                F.count(F.when(F.col("total_tokens") > 0, 1)).alias("with_tokens"),
            )
            .collect()[0]
            .asDict()
        ),
        "error_patterns": lambda: error_patterns(df),
        "span_types": lambda: span_types(df),
    }
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="trace2eval-aggregates") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        done = {name: future.result() for name, future in futures.items()}
    return {
        "agent": agent_section(done["tools"], done["shapes"], done["roots"], done["totals"], n),
        "trace_summary": trace_summary(done["statuses"], done["totals"], done["ranked"], n),
        "error_patterns": done["error_patterns"],
        "tool_usage": tool_usage(done["tools"], done["ranked"]),
        "span_types": done["span_types"],
        "request_shapes": [
            {"shape": g["key"][0], "count": g["events"], "evidence": g["evidence"]} for g in done["shapes"]
        ],
        "population": info_population(done["statuses"], done["info_totals"], done["ranked"], n),
    }


def info_population(statuses, totals: dict[str, Any], ranked: dict[tuple, RankedValues], n: int) -> dict[str, Any]:
    """The `population` block: status counts, latency and total tokens from each trace's info,
    as the local engine's index pass reports them (its note says how this engine read them)."""
    n_tokens = int(totals["with_tokens"] or 0)
    return {
        "traces": n,
        "by_status": {g["key"][0]: g["events"] for g in sorted(statuses, key=lambda g: g["first"])},
        "latency_ms": _summary(n, float(totals["latency"] or 0), ranked[("execution", "")]),
        "tokens_per_trace": (
            _summary(n_tokens, int(totals["tokens"] or 0), ranked[("total_tokens", "")].as_int())
            if n_tokens
            else {"count": 0}
        ),
        "note": "every matching trace, digested on the cluster",
    }


def _totals(df, n: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    if n <= FOLD_LIMIT:  # the analyzer's float sum, in its row order
        latency = python_sum_expr(
            F.transform(
                F.array_sort(
                    F.collect_list(
                        F.struct(
                            (-F.col("timestamp_ms")).alias("a"),
                            F.col("trace_id").alias("b"),
                            F.col("duration_ms").alias("d"),
                        )
                    )
                ),
                lambda x: x["d"],
            )
        )
    else:
        latency = F.sum("duration_ms")
    return (
        df.agg(
            latency.alias("latency"),
            F.sum("n_tool_calls").alias("tool_calls"),
            F.sum("n_user_turns").alias("user_turns"),
            F.sum(F.when(F.col("tokens") > 0, F.col("tokens")).otherwise(0)).alias("tokens"),
            F.sum(F.when(F.col("tokens") > 0, 1).otherwise(0)).alias("with_tokens"),
            F.sum(F.when(~F.col("has_answer"), 1).otherwise(0)).alias("without_answer"),
            F.min(F.when(F.col("timestamp_ms") != 0, F.col("timestamp_ms"))).alias("first_ts"),
            F.max(F.when(F.col("timestamp_ms") != 0, F.col("timestamp_ms"))).alias("last_ts"),
            F.sum(F.when(F.col("n_user_turns") > 1, 1).otherwise(0)).alias("multi_turn"),
            F.sum(F.when(F.col("n_tool_calls") > 0, 1).otherwise(0)).alias("uses_tools"),
            F.sum(F.when(F.array_contains("span_types", "RETRIEVER"), 1).otherwise(0)).alias("retrieval"),
            F.max(F.col("has_answer").cast("int")).alias("any_answer"),
        )
        .collect()[0]
        .asDict()
    )


def _order_statistics(df, tools) -> dict[tuple, RankedValues]:
    """The four trace distributions and per-tool latencies, ranked in one job."""
    from pyspark.sql import functions as F

    def metric(frame, name, column):
        return frame.select(
            F.lit(name).alias("metric"), F.lit("").alias("tool"), F.col(column).cast("double").alias("value")
        )

    values = (
        metric(df, "latency", "duration_ms")
        .unionByName(metric(df, "calls", "n_tool_calls"))
        .unionByName(metric(df, "turns", "n_user_turns"))
        .unionByName(metric(df.where(F.col("tokens") > 0), "tokens", "tokens"))
        .unionByName(
            metric(df.withColumn("_execution", F.coalesce("execution_ms", F.lit(0))), "execution", "_execution")
        )
        .unionByName(metric(df.where(F.col("total_tokens") > 0), "total_tokens", "total_tokens"))
        .unionByName(
            tools.select(F.lit("tool").alias("metric"), F.col("name").alias("tool"), F.col("ms").alias("value"))
        )
    )
    return ranked_values(values, "value", ["metric", "tool"])


def trace_summary(statuses, totals: dict[str, Any], ranked: dict[tuple, RankedValues], n: int) -> dict[str, Any]:
    n_tokens = int(totals["with_tokens"] or 0)
    return describe_trace_summary(
        n,
        {g["key"][0]: g["events"] for g in sorted(statuses, key=lambda g: g["first"])},
        _summary(n, totals["latency"], ranked[("latency", "")]),
        _summary(n_tokens, int(totals["tokens"] or 0), ranked[("tokens", "")].as_int()) if n_tokens else {"count": 0},
        int(totals["tokens"] or 0),
        _summary(n, int(totals["tool_calls"]), ranked[("calls", "")].as_int()),
        _summary(n, int(totals["user_turns"]), ranked[("turns", "")].as_int()),
        int(totals["without_answer"] or 0),
        totals["first_ts"],
        totals["last_ts"],
    )


def error_patterns(df, limit: int = 30) -> list[dict[str, Any]]:
    """Failures grouped by where they happened and the normalized message (first 30 groups)."""
    from pyspark.sql import functions as F

    base = ["trace_id", "timestamp_ms"]
    exceptions = df.select(*base, F.explode("exceptions").alias("e")).select(
        *base,
        F.lit("exception").alias("where"),
        F.col("e.type").alias("name"),
        F.col("e.message").alias("message"),
        F.col("e.pos").alias("_pos"),
    )
    failed_tools = (
        df.select(*base, F.explode("tools").alias("t"))
        .where(~F.col("t.ok"))
        .select(
            *base,
            F.lit("tool").alias("where"),
            F.col("t.name").alias("name"),
            F.coalesce(F.when(F.col("t.error") != "", F.col("t.error")), F.lit("error")).alias("message"),
            (F.col("t.pos") + 100).alias("_pos"),
        )
    )
    errored = df.where((F.col("status") == "ERROR") & (F.size("exceptions") == 0)).select(
        *base,
        F.lit("trace").alias("where"),
        F.lit("ERROR").alias("name"),
        F.lit(TRACE_NO_EXCEPTION).alias("message"),
        F.lit(1000).alias("_pos"),
    )
    events = (
        exceptions.unionByName(failed_tools)
        .unionByName(errored)
        .withColumn("_order", _order_key(F.col("_pos").alias("_o3")))
    )
    # The analyzer ranks these by distinct traces, not by events.
    groups = sorted(
        grouped(events, ["where", "name", "message"], evidence=EVIDENCE_IDS), key=lambda g: (-g["traces"], g["first"])
    )[:limit]
    return [describe_error_pattern(*g["key"], g["events"], g["traces"], g["evidence"]) for g in groups]


def tool_usage(tool_groups: list[dict[str, Any]], ranked: dict[tuple, RankedValues], limit: int = 40):
    """Calls, failures and latency per tool (the 40 most called)."""
    return [
        describe_tool(
            g["key"][0],
            g["events"],
            g["traces"],
            g["failures"],
            ranked[("tool", g["key"][0])].percentile(50),
            ranked[("tool", g["key"][0])].percentile(95),
            g["evidence"],
        )
        for g in tool_groups[:limit]
    ]


def span_types(df) -> dict[str, int]:
    from pyspark.sql import functions as F

    kinds = df.select("trace_id", "timestamp_ms", F.posexplode("span_types").alias("_pos", "kind")).withColumn(
        "_order", _order_key(F.col("_pos").alias("_o3"))
    )
    return {g["key"][0]: g["events"] for g in sorted(grouped(kinds, ["kind"]), key=lambda g: g["first"])}


def agent_section(tool_groups, shapes, roots, totals: dict[str, Any], n: int) -> dict[str, Any]:
    """`describe_agent` over every trace."""
    return describe_agent(agent_counts(tool_groups, shapes, roots, totals, n))


def agent_counts(tool_groups, shapes, roots, totals: dict[str, Any], n: int) -> AgentCounts:
    return AgentCounts(
        n=n,
        tools=[(g["key"][0], g["events"]) for g in tool_groups],
        sub_agents=sorted(g["key"][0] for g in tool_groups if g["nested_calls"]),
        nested_calls=sum(g["nested_calls"] for g in tool_groups),
        multi_turn=int(totals["multi_turn"]),
        uses_tools=int(totals["uses_tools"]),
        retrieval=int(totals["retrieval"]),
        roots=[(g["key"][0], g["events"]) for g in roots],
        shapes=[(g["key"][0], g["events"]) for g in shapes],
        any_answer=bool(totals["any_answer"]),
    )
