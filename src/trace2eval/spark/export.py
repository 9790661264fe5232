"""Write MLflow traces as Unity-Catalog-layout trace tables with Spark.

`write_trace_tables` turns `mlflow.entities.Trace` objects into the spans table (and the
trace-metadata table) of a location: on a Unity Catalog cluster under `catalog.schema`, in a
local session under the stand-in database `<catalog>__<schema>` (see `UCTraceLocation`).
`export_experiment` does it for every trace of an MLflow experiment, page by page. Tests,
benchmarks and demos use it to build a location from real MLflow traces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trace2eval.spark.location import UCTraceLocation
from trace2eval.spark.otel import METADATA_SCHEMA, SPANS_SCHEMA, trace_to_metadata_row, trace_to_span_rows

BATCH_TRACES = 500


def write_trace_tables(
    spark,
    traces: Iterable[Any],
    location: UCTraceLocation,
    *,
    metadata: bool = True,
    local: bool = True,
    mode: str = "overwrite",
    fmt: str = "parquet",
) -> int:
    """Write the traces' span rows (and metadata rows); returns how many traces were written.

    `local`: write to the stand-in database of a local session rather than `catalog.schema`.
    """
    if local:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{location.local_database}`")
        name = location.local_qualified
    else:
        name = location.qualified
    written = 0
    batch: list[Any] = []

    def flush(write_mode: str) -> None:
        spans = [row for trace in batch for row in trace_to_span_rows(trace)]
        spark.createDataFrame(spans, SPANS_SCHEMA).write.mode(write_mode).format(fmt).saveAsTable(
            name(location.spans_table)
        )
        if metadata:
            rows = [trace_to_metadata_row(trace) for trace in batch]
            spark.createDataFrame(rows, METADATA_SCHEMA).write.mode(write_mode).format(fmt).saveAsTable(
                name(location.metadata_table)
            )

    for trace in traces:
        batch.append(trace)
        if len(batch) >= BATCH_TRACES:
            flush(mode if written == 0 else "append")
            written += len(batch)
            batch = []
    if batch or written == 0:
        flush(mode if written == 0 else "append")
        written += len(batch)
    return written


def export_experiment(spark, tracking_uri: str, experiment_id: str, location: UCTraceLocation, **kwargs) -> int:
    """Copy every trace of an MLflow experiment into `location`'s tables; returns the count."""
    from trace2eval.traces.source import TraceQuery, UnreadableTrace, iter_trace_pages, open_client

    client = open_client(tracking_uri, experiment_id)
    query = TraceQuery(experiment_id)
    traces = (
        trace
        for page in iter_trace_pages(client, query, page_size=500)
        for trace in page
        if not isinstance(trace, UnreadableTrace)
    )  # MLflow cannot load it: nothing to copy
    return write_trace_tables(spark, traces, location, **kwargs)
