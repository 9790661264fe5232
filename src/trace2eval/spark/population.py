"""Analysis sections over every trace, as Spark DataFrame operations.

These reproduce the analyzer's population sections (`agent`, `trace_summary`, `error_patterns`,
`tool_usage`, `span_types`, `request_shapes`) number for number, so that on the same traces the
Spark engine writes the same `analysis.json` as the local engine. What makes that exact:

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

EVIDENCE_IDS = 25  # as in analysis.analyze
FOLD_LIMIT = 2_000_000
QUANTILES = (50, 90, 95, 99)
TRACE_NO_EXCEPTION = "trace ended with status ERROR (no exception recorded)"


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
    hist = (hist.withColumn("_last", F.sum("_c").over(running) - 1)
            .withColumn("_n", F.sum("_c").over(whole))
            .withColumn("_first", F.col("_last") - F.col("_c") + 1))
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
# Helpers for "most common, first seen first" and "first N ids in row order"


def _order_key(*extra):
    """Row order: newest first, then trace id; `extra` orders events inside a trace."""
    from pyspark.sql import functions as F

    return F.struct((-F.col("timestamp_ms")).alias("_o1"), F.col("trace_id").alias("_o2"), *extra)


def _first_ids(df, keys: list[str], n: int, only: list[tuple] | None = None) -> dict[tuple, list[str]]:
    """The first `n` distinct trace ids per key, in row order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    distinct = df.select(*keys, "trace_id", "timestamp_ms").distinct()
    if only is not None:
        if not only:
            return {}
        wanted = df.sparkSession.createDataFrame([list(k) for k in only], df.select(*keys).schema)
        distinct = distinct.join(F.broadcast(wanted), on=keys, how="left_semi")
    order = Window.partitionBy(*keys).orderBy(F.desc("timestamp_ms"), F.asc("trace_id"))
    rows = distinct.withColumn("_rn", F.row_number().over(order)).where(F.col("_rn") <= n).collect()
    found: dict[tuple, list] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["_rn"]):
        found[tuple(row[k] for k in keys)].append(row["trace_id"])
    return found


def _ranked_counts(df, key: str, extra_aggs=()) -> list[Any]:
    """Per key: count and first appearance, most common first (ties: first seen first)."""
    from pyspark.sql import functions as F

    grouped = df.groupBy(key).agg(F.count(F.lit(1)).alias("_count"), F.min("_order").alias("_first"), *extra_aggs)
    return grouped.orderBy(F.desc("_count"), F.asc("_first")).collect()


# ---------------------------------------------------------------------------------------------
# The sections


def population_sections(df, n: int) -> dict[str, Any]:
    """All population sections for the digest rows in `df` (n = its row count, > 0)."""
    from pyspark.sql import functions as F

    tools = df.select("trace_id", "timestamp_ms", F.explode("tools").alias("t")).select(
        "trace_id", "timestamp_ms", "t.*").withColumn("_order", _order_key(F.col("pos").alias("_o3")))
    tool_counts = _ranked_counts(tools, "name", (F.sum(F.when(~F.col("ok"), 1).otherwise(0)).alias("failures"),
                                                 F.countDistinct("trace_id").alias("traces")))
    return {
        "agent": agent_section(df, tools, tool_counts, n),
        "trace_summary": trace_summary(df, n),
        "error_patterns": error_patterns(df),
        "tool_usage": tool_usage(tools, tool_counts),
        "span_types": span_types(df),
        "request_shapes": request_shapes(df),
    }


def trace_summary(df, n: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    statuses = df.withColumn("_order", _order_key())
    by_status = {r["status"]: r["_count"] for r in
                 sorted(statuses.groupBy("status").agg(F.count(F.lit(1)).alias("_count"),
                                                        F.min("_order").alias("_first")).collect(),
                        key=lambda r: r["_first"])}
    with_tokens = df.where(F.col("tokens") > 0)
    latency_sum = (F.sum("duration_ms") if n > FOLD_LIMIT else
                   python_sum_expr(F.transform(F.array_sort(F.collect_list(F.struct(
                       (-F.col("timestamp_ms")).alias("a"), F.col("trace_id").alias("b"),
                       F.col("duration_ms").alias("d")))), lambda x: x["d"])))
    totals = df.agg(
        latency_sum.alias("latency"),
        F.sum("n_tool_calls").alias("tool_calls"),
        F.sum("n_user_turns").alias("user_turns"),
        F.sum(F.when(F.col("tokens") > 0, F.col("tokens")).otherwise(0)).alias("tokens"),
        F.sum(F.when(F.col("tokens") > 0, 1).otherwise(0)).alias("with_tokens"),
        F.sum(F.when(~F.col("has_answer"), 1).otherwise(0)).alias("without_answer"),
        F.min(F.when(F.col("timestamp_ms") != 0, F.col("timestamp_ms"))).alias("first_ts"),
        F.max(F.when(F.col("timestamp_ms") != 0, F.col("timestamp_ms"))).alias("last_ts"),
    ).collect()[0]
    # One histogram job for the four distributions; integer metrics get their int type back.
    metrics = (df.select(F.lit("latency").alias("metric"), F.col("duration_ms").alias("value"))
               .unionByName(df.select(F.lit("calls").alias("metric"), F.col("n_tool_calls").cast("double").alias("value")))
               .unionByName(df.select(F.lit("turns").alias("metric"), F.col("n_user_turns").cast("double").alias("value")))
               .unionByName(with_tokens.select(F.lit("tokens").alias("metric"), F.col("tokens").cast("double").alias("value"))))
    ranked = ranked_values(metrics, "value", ["metric"])
    latency, calls, turns = ranked[("latency",)], ranked[("calls",)].as_int(), ranked[("turns",)].as_int()
    n_tokens = int(totals["with_tokens"] or 0)
    tokens = ranked[("tokens",)].as_int() if n_tokens else None
    return {
        "total_analyzed": n,
        "by_status": by_status,
        "error_count": by_status.get("ERROR", 0),
        "success_count": by_status.get("OK", 0),
        "latency_ms": _summary(n, totals["latency"], latency),
        "tokens_per_trace": _summary(n_tokens, int(totals["tokens"] or 0), tokens) if n_tokens else {"count": 0},
        "total_tokens": int(totals["tokens"] or 0),
        "tool_calls_per_trace": _summary(n, int(totals["tool_calls"]), calls),
        "user_turns_per_trace": _summary(n, int(totals["user_turns"]), turns),
        "without_answer": int(totals["without_answer"] or 0),
        "first_timestamp_ms": totals["first_ts"],
        "last_timestamp_ms": totals["last_ts"],
    }


def error_patterns(df, limit: int = 30) -> list[dict[str, Any]]:
    """Failures grouped by where they happened and the normalized message (first 30 groups)."""
    from pyspark.sql import functions as F

    base = ["trace_id", "timestamp_ms"]
    exceptions = df.select(*base, F.explode("exceptions").alias("e")).select(
        *base, F.lit("exception").alias("where"), F.col("e.type").alias("name"), F.col("e.message").alias("message"),
        F.col("e.pos").alias("_pos"))
    failed_tools = df.select(*base, F.explode("tools").alias("t")).where(~F.col("t.ok")).select(
        *base, F.lit("tool").alias("where"), F.col("t.name").alias("name"),
        F.coalesce(F.when(F.col("t.error") != "", F.col("t.error")), F.lit("error")).alias("message"),
        (F.col("t.pos") + 100).alias("_pos"))
    errored = df.where((F.col("status") == "ERROR") & (F.size("exceptions") == 0)).select(
        *base, F.lit("trace").alias("where"), F.lit("ERROR").alias("name"), F.lit(TRACE_NO_EXCEPTION).alias("message"),
        F.lit(1000).alias("_pos"))
    events = exceptions.unionByName(failed_tools).unionByName(errored).withColumn(
        "_order", _order_key(F.col("_pos").alias("_o3")))
    keys = ["where", "name", "message"]
    groups = (events.groupBy(*keys).agg(F.count(F.lit(1)).alias("count"),
                                        F.countDistinct("trace_id").alias("traces"),
                                        F.min("_order").alias("_first"))
              .orderBy(F.desc("traces"), F.asc("_first")).limit(limit).collect())
    top = [tuple(g[k] for k in keys) for g in groups]
    evidence = _first_ids(events, keys, EVIDENCE_IDS, only=top)
    return [{"where": g["where"], "name": g["name"], "message": g["message"], "count": g["count"],
             "traces": g["traces"], "evidence": evidence.get(tuple(g[k] for k in keys), [])} for g in groups]


def tool_usage(tools, tool_counts, limit: int = 40) -> list[dict[str, Any]]:
    """Calls, failures and latency per tool (the 40 most called)."""
    ranked = tool_counts[:limit]
    names = [r["name"] for r in ranked]
    durations = ranked_values(tools, "ms", ["name"], quantiles=(50, 95))
    evidence = _first_ids(tools, ["name"], 5, only=[(n,) for n in names])
    return [
        {"tool": r["name"], "calls": r["_count"], "traces": r["traces"], "failures": r["failures"],
         "failure_rate": round(r["failures"] / r["_count"], 3),
         "p50_ms": round(durations[(r["name"],)].percentile(50), 1),
         "p95_ms": round(durations[(r["name"],)].percentile(95), 1),
         "evidence": evidence.get((r["name"],), [])[:5]}
        for r in ranked
    ]


def request_shapes(df) -> list[dict[str, Any]]:
    ranked = _ranked_counts(df.withColumn("_order", _order_key()), "request_shape")
    evidence = _first_ids(df, ["request_shape"], 5)
    return [{"shape": r["request_shape"], "count": r["_count"], "evidence": evidence.get((r["request_shape"],), [])}
            for r in ranked]


def span_types(df) -> dict[str, int]:
    from pyspark.sql import functions as F

    kinds = df.select("trace_id", "timestamp_ms", F.posexplode("span_types").alias("_pos", "kind")).withColumn(
        "_order", _order_key(F.col("_pos").alias("_o3")))
    rows = kinds.groupBy("kind").agg(F.count(F.lit(1)).alias("_count"), F.min("_order").alias("_first")).collect()
    return {r["kind"]: r["_count"] for r in sorted(rows, key=lambda r: r["_first"])}


def agent_section(df, tools, tool_counts, n: int) -> dict[str, Any]:
    """`describe_agent` over every trace."""
    from pyspark.sql import functions as F

    nested = _ranked_counts(tools.where(F.col("nested")), "name")
    totals = df.agg(
        F.sum(F.when(F.col("n_user_turns") > 1, 1).otherwise(0)).alias("multi_turn"),
        F.sum(F.when(F.col("n_tool_calls") > 0, 1).otherwise(0)).alias("uses_tools"),
        F.sum(F.when(F.array_contains("span_types", "RETRIEVER"), 1).otherwise(0)).alias("retrieval"),
        F.max(F.col("has_answer").cast("int")).alias("any_answer"),
    ).collect()[0]
    ordered = df.withColumn("_order", _order_key())
    roots = _ranked_counts(ordered.withColumn("_root", F.when(F.col("root_name") != "", F.col("root_name"))
                                              .otherwise(F.lit("?"))), "_root")
    shapes = _ranked_counts(ordered, "request_shape")
    n_tools = sum(r["_count"] for r in tool_counts)
    n_nested = sum(r["_count"] for r in nested)
    multi_turn, uses_tools, retrieval = int(totals["multi_turn"]), int(totals["uses_tools"]), int(totals["retrieval"])
    if nested and n_nested >= 0.5 * n_tools:
        kind = "multi-agent supervisor: routes requests to sub-agents exposed as tools"
    elif retrieval >= 0.5 * n:
        kind = "retrieval-augmented agent"
    elif uses_tools >= 0.3 * n and multi_turn >= 0.3 * n:
        kind = "tool-using conversational agent (multi-turn)"
    elif uses_tools >= 0.3 * n:
        kind = "tool-using agent"
    else:
        kind = "LLM application without tools"
    # Same expression as the analyzer, precedence included: with no answer anywhere the whole
    # description is the "often empty" note.
    io = ("inputs " + ", ".join(r["request_shape"] for r in shapes[:3]) + "; outputs carry a final text answer"
          if totals["any_answer"] else "; outputs are often empty")
    return {
        "type": kind,
        "root_spans": {r["_root"]: r["_count"] for r in roots[:5]},
        "input_shapes": {r["request_shape"]: r["_count"] for r in shapes[:5]},
        "tools": {r["name"]: r["_count"] for r in tool_counts[:30]},
        "sub_agents": sorted(r["name"] for r in nested),
        "multi_turn_share": round(multi_turn / n, 3),
        "io": io,
    }
