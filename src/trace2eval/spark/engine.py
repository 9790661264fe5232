"""The initializer and dataset steps on Unity Catalog trace tables.

`analyze(config, window)`: spans → per-trace digests (Spark) → population sections over every trace
(Spark) → a stratified sample of at most `max_traces` digests streamed to the driver → the same
`Analyzer` the local engine uses, with the population sections handed over. When the sample
holds every trace the result equals the local engine's on the same traces. A nightly `window`
(the suite's watermark) narrows the read the way it does for the local engine: traces newer than
its start, minus the ids already processed in its overlap.

`fetch(config, ids)`: the full traces the dataset task turns into rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from trace2eval import ui
from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.querytypes import prewarm
from trace2eval.config import SessionConfig
from trace2eval.errors import SourceError
from trace2eval.spark.location import UCTraceLocation

if TYPE_CHECKING:
    from trace2eval.sessions.watermark import TraceWindow

# Grouped traces are big rows (every span's payload): keep Arrow batches to the Python worker small.
ARROW_RECORDS_PER_BATCH = 64
SCRATCH_ENV = "TRACE2EVAL_SPARK_SCRATCH"  # <catalog>.<schema> for staging digests where caching is unavailable
POINTS_LIMIT = 50_000  # the report draws at most the newest 50k traces


class UCAnalysis(NamedTuple):
    analysis: dict[str, Any] | None  # `state/analysis.json`; None when a nightly window holds nothing new
    points: dict[str, list] | None  # the newest traces' time, duration and status, for the report's pictures


def analyze(config: SessionConfig, window: TraceWindow | None = None) -> UCAnalysis:
    """The analysis of the Unity Catalog trace tables, and the points the report draws."""
    with _spark_errors("analyzing the traces"):
        return _analyze(config, window)


def _analyze(config: SessionConfig, window: TraceWindow | None = None) -> UCAnalysis:
    from trace2eval.spark.digests import digest_frame
    from trace2eval.spark.filters import selected_trace_ids
    from trace2eval.spark.population import population_sections
    from trace2eval.spark.sample import stratified_sample
    from trace2eval.spark.session import get_spark
    from trace2eval.spark.tables import open_tables

    location = UCTraceLocation.parse(config.source)
    spark = get_spark()
    tables = open_tables(spark, location)
    ui.say(
        f"Reading traces with Spark from {tables.spans_name}"
        + (f" (+ {tables.metadata_name})" if tables.metadata_name else "")
    )
    prewarm()
    since_ms = window.since_ms if window is not None else config.since_ms
    selected = selected_trace_ids(tables, config.filter_string, since_ms)
    with _job_settings(spark), _staged(digest_frame(tables, selected, config.labels), spark) as frame:
        from pyspark.sql import functions as F

        started = time.monotonic()
        outcome = {
            (r["skipped"] or "ok"): (r["count"], r["example"])
            for r in frame.groupBy("skipped")
            .agg(F.count(F.lit(1)).alias("count"), F.min("failure").alias("example"))
            .collect()
        }
        total = outcome.get("ok", (0, None))[0]
        ui.say(f"Digested {total} traces on the cluster in {time.monotonic() - started:.1f} s")
        _report_skipped(outcome)
        digests = frame.where(F.col("skipped").isNull())
        if window is not None and window.skip_ids and total:
            # Already processed inside the overlap below the watermark: left out and counted, like the local engine.
            processed = F.col("trace_id").isin(sorted(window.skip_ids))
            again = digests.where(processed).count()
            window.skipped += again
            digests, total = digests.where(~processed), total - again
        if total == 0 and window is not None and window.previous is not None:
            return UCAnalysis(None, None)  # nothing new since the last successful run
        if total == 0:
            what = f"{location} holds no traces"
            if config.filter_string or since_ms is not None:
                what += " matching --filter / --since"
            raise SourceError(what, "check the trace location, or widen --filter / --since")
        if window is not None:
            # The watermark moves past what was read: every digested trace's id and time reach the driver
            # (two small columns; a night's traffic, not the table).
            for row in digests.select("trace_id", "timestamp_ms").toLocalIterator():
                window.accepts(row["trace_id"], int(row["timestamp_ms"] or 0))
            if config.max_traces and total > config.max_traces:
                ui.warn(
                    f"more new traces ({total}) than --max-traces {config.max_traces}: a sample is analyzed and "
                    "the watermark moves past the rest (raise max_traces to cover a night's traffic)"
                )
        population = population_sections(digests, total)
        info_population = population.pop("population")
        budget = config.max_traces or total
        sample, design = stratified_sample(digests, total, budget, seed=config.seed)
        analyzer = Analyzer(seed=config.seed, label_name=config.labels)
        ordered = sample.select("digest", "timestamp_ms", "trace_id").orderBy(F.desc("timestamp_ms"), F.asc("trace_id"))
        for row in ui.track(ordered.toLocalIterator(), "Analyzing the sample", total=design.size if design else total):
            analyzer.add(json.loads(row["digest"]))
        analysis = analyzer.finish(sample_note=design.note() if design else None, population=population)
        # The report draws latency and traffic from one small point per trace; it cannot page
        # through MLflow for traces that live only in Unity Catalog, so they are handed over here.
        points = (
            digests.select("timestamp_ms", "execution_ms", "status")
            .orderBy(F.desc("timestamp_ms"), F.asc("trace_id"))
            .limit(POINTS_LIMIT)
            .collect()
        )
        if design:
            info_population["note"] += "; findings come from the sample"
        analysis["population"] = info_population
        skipped = {k: {"traces": v[0], "example": v[1]} for k, v in outcome.items() if k != "ok"}
        if skipped:  # the same record the local engine writes (traces/source.py SkippedTraces), examples without ids
            analysis["skipped_traces"] = {
                "count": sum(v["traces"] for v in skipped.values()),
                "by_stage": {k: v["traces"] for k, v in skipped.items()},
                "traces": [{"trace_id": None, "stage": k, "reason": v["example"]} for k, v in skipped.items()],
                "note": "traces without a root span yet, or whose digest failed on the cluster; skipped, not analyzed",
            }
        if design or skipped:
            analysis["sampling"] = {
                "source": str(location),
                "engine": "spark",
                "population": total,
                "sample": design.size if design else total,
                "strata": design.strata if design else [],
                "skipped": skipped,
            }
    return UCAnalysis(
        analysis,
        {
            "timestamps_ms": [int(p["timestamp_ms"] or 0) for p in points],
            "durations_ms": [float(p["execution_ms"] or 0) for p in points],
            "statuses": [p["status"] for p in points],
        },
    )


def _report_skipped(outcome: dict) -> None:
    incomplete = outcome.get("incomplete")
    if incomplete:
        ui.warn(f"{incomplete[0]} traces have no root span yet (still running, or spans missing): skipped")
    errors = outcome.get("error")
    if errors:
        ui.warn(f"{errors[0]} traces could not be digested and were skipped (e.g. {errors[1]})")


@contextlib.contextmanager
def _job_settings(spark):
    """Session settings for the duration of the job, restored afterwards (shared sessions)."""
    wanted = {"spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_RECORDS_PER_BATCH)}
    previous = {}
    for key, value in wanted.items():
        try:
            previous[key] = spark.conf.get(key, None)
            spark.conf.set(key, value)
        except Exception:  # some managed sessions refuse session settings: run with theirs
            previous.pop(key, None)
    try:
        yield
    finally:
        for key, value in previous.items():
            try:
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)
            except Exception:
                pass


@contextlib.contextmanager
def _staged(frame, spark):
    """The digest frame computed once and reused by every aggregate.

    Persisted where the cluster allows it; where it does not (serverless compute), staged in a
    scratch table when TRACE2EVAL_SPARK_SCRATCH names a schema; otherwise recomputed per use
    (correct, slower: a warning says so).
    """
    scratch = os.environ.get(SCRATCH_ENV, "").strip()
    if scratch:
        parts = scratch.split(".")
        if not 1 <= len(parts) <= 2 or not all(re.match(r"^[\w\-]+$", p) for p in parts):
            raise SourceError(f"cannot read {SCRATCH_ENV}={scratch!r}", "give a schema as <catalog>.<schema>")
        name = ".".join(f"`{p}`" for p in parts) + f".`trace2eval_digests_{os.getpid()}_{int(time.time())}`"
        frame.write.mode("overwrite").saveAsTable(name)
        try:
            yield spark.table(name)
        finally:
            try:
                spark.sql(f"DROP TABLE IF EXISTS {name}")
            except Exception:
                ui.warn(f"could not drop the scratch table {name}; drop it by hand")
        return
    try:
        from pyspark import StorageLevel

        cached = frame.persist(StorageLevel.MEMORY_AND_DISK)
    except Exception:
        ui.warn(
            "this cluster cannot cache DataFrames: digests are recomputed for each aggregate; "
            f"set {SCRATCH_ENV}=<catalog>.<schema> to stage them in a table instead"
        )
        yield frame
        return
    try:
        yield cached
    finally:
        try:
            cached.unpersist()
        except Exception:
            pass


def fetch(config: SessionConfig, trace_ids: list[str]) -> dict[str, Any]:
    """{trace id: Trace} for the dataset task, in one Spark query."""
    from trace2eval.spark.fetch import fetch_traces
    from trace2eval.spark.session import get_spark
    from trace2eval.spark.tables import open_tables

    location = UCTraceLocation.parse(config.source)
    with _spark_errors("fetching the dataset traces"):
        spark = get_spark()
        return fetch_traces(spark, open_tables(spark, location), trace_ids)


@contextlib.contextmanager
def _spark_errors(doing: str):
    """A failed Spark job (lost executors, denied grants, a worker that died) is an error the
    user acts on, not a trace2eval bug: report its first line; the chain keeps the details."""
    try:
        yield
    except Exception as exc:
        if not _is_spark_error(exc):
            raise
        from trace2eval.spark.tables import error_summary

        raise SourceError(
            f"the Spark job failed while {doing}: {error_summary(exc, 300)}",
            "see the driver log (and the Spark UI) for the failing stage; rerun the task once fixed",
        ) from exc


def _is_spark_error(exc: Exception) -> bool:
    return any(c.__module__.split(".")[0] in ("pyspark", "py4j") for c in type(exc).__mro__)
