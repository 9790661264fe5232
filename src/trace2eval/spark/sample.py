"""A stratified sample of digests for the analyzer, when there are more traces than it may read.

Strata: trace status (OK / ERROR / other) × time window (equal slices of the traces' time span)
× tool path (the set of tools a trace called; the most common paths each form a stratum, the
rest share one). Each stratum gets a share of the budget proportional to its size, but never
fewer than a small floor (all of it when smaller), so rare failures and rare paths are seen.
Inside a stratum the pick is a seeded hash of the trace id (of the conversation, for traces with
session metadata): deterministic and reproducible.

The allocation runs on the driver over a few hundred strata counts; the pick is a Spark job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TIME_WINDOWS = 6
TOP_TOOL_PATHS = 8
STRATUM_FLOOR = 5


@dataclass
class SampleDesign:
    population: int
    size: int
    strata: list[dict[str, Any]] = field(default_factory=list)

    def note(self) -> str:
        return (
            f"a stratified sample of {self.size} of {self.population} traces (by status × {TIME_WINDOWS} time windows "
            f"× tool path, {len(self.strata)} strata; proportional, at least {STRATUM_FLOOR} per stratum; "
            f"picked by a seeded hash of the trace id): findings, query types, samples and the dataset come "
            f"from the sample; agent, trace_summary, error_patterns, tool_usage, span_types and request_shapes "
            f"cover all {self.population} traces"
        )


def allocate(counts: dict[Any, int], budget: int, floor: int = STRATUM_FLOOR) -> dict[Any, int]:
    """How many traces to take from each stratum: sums to min(budget, total).

    Proportional to stratum size (largest remainder, ties by key), after a floor of
    min(size, floor) per stratum; the floor is dropped when the strata alone exceed the budget.
    """
    total = sum(counts.values())
    if total <= budget:
        return dict(counts)
    keys = sorted(counts, key=str)
    base = {k: min(counts[k], floor) for k in keys}
    if sum(base.values()) > budget:
        base = dict.fromkeys(keys, 0)
    remaining = budget - sum(base.values())
    capacity = {k: counts[k] - base[k] for k in keys}
    cap_total = sum(capacity.values())
    shares = {k: remaining * capacity[k] / cap_total if cap_total else 0.0 for k in keys}
    alloc = {k: base[k] + min(capacity[k], math.floor(shares[k])) for k in keys}
    left = budget - sum(alloc.values())
    for k in sorted(keys, key=lambda k: (-(shares[k] - math.floor(shares[k])), str(k))):
        if left <= 0:
            break
        if alloc[k] < counts[k]:
            alloc[k] += 1
            left -= 1
    while left > 0:  # rounding met a full stratum: fill from the largest with room
        k = max((k for k in keys if alloc[k] < counts[k]), key=lambda k: (counts[k] - alloc[k], str(k)))
        alloc[k] += 1
        left -= 1
    return alloc


def stratified_sample(df, total: int, budget: int, seed: int = 0):
    """(DataFrame of the picked digest rows, SampleDesign); every row when total <= budget."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if total <= budget:
        return df, None
    bounds = df.agg(F.min("timestamp_ms").alias("lo"), F.max("timestamp_ms").alias("hi")).collect()[0]
    lo, span = int(bounds["lo"] or 0), max(1, int(bounds["hi"] or 0) - int(bounds["lo"] or 0) + 1)
    paths = [
        r["tool_path"]
        for r in df.groupBy("tool_path")
        .count()
        .orderBy(F.desc("count"), F.asc("tool_path"))
        .limit(TOP_TOOL_PATHS)
        .collect()
    ]
    keyed = (
        df.withColumn("_status", F.when(F.col("status").isin("OK", "ERROR"), F.col("status")).otherwise("OTHER"))
        .withColumn(
            "_window",
            F.least(
                F.lit(TIME_WINDOWS - 1), F.floor((F.col("timestamp_ms") - F.lit(lo)) * TIME_WINDOWS / F.lit(span))
            ).cast("int"),
        )
        .withColumn("_path", F.when(F.col("tool_path").isin(paths), F.col("tool_path")).otherwise(F.lit("<other>")))
    )
    strata_cols = ["_status", "_window", "_path"]
    counts = {tuple(r[c] for c in strata_cols): r["count"] for r in keyed.groupBy(*strata_cols).count().collect()}
    alloc = allocate(counts, budget)
    plan = df.sparkSession.createDataFrame(
        [(*k, int(v)) for k, v in alloc.items() if v > 0], "_status STRING, _window INT, _path STRING, _take INT"
    )
    # Hashed by conversation (the session in the digest, else the trace): within a stratum, the turns
    # of one conversation rank together, so a sample tends to keep conversations whole.
    unit = F.coalesce(F.get_json_object(F.col("digest"), "$.session"), F.col("trace_id"))
    order = Window.partitionBy(*strata_cols).orderBy(F.xxhash64(unit, F.lit(int(seed))), F.col("trace_id"))
    picked = (
        keyed.join(F.broadcast(plan), on=strata_cols, how="inner")
        .withColumn("_rn", F.row_number().over(order))
        .where(F.col("_rn") <= F.col("_take"))
        .drop("_status", "_window", "_path", "_take", "_rn")
    )
    strata = [
        {"status": k[0], "window": k[1], "tool_path": k[2], "traces": counts[k], "sampled": alloc.get(k, 0)}
        for k in sorted(counts, key=lambda k: (-counts[k], str(k)))
    ]
    return picked, SampleDesign(population=total, size=sum(alloc.values()), strata=strata)
