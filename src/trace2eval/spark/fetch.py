"""Full traces for the dataset task, read back from the spans table.

The dataset needs the complete root inputs and outputs of a few dozen chosen traces. They are
rebuilt from their span rows as real `mlflow.entities.Trace` objects, in one Spark query for all
of them: this works whether or not the Unity Catalog location is linked to an MLflow experiment
the job can reach, and reads exactly the data the analysis saw.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from typing import Any

from trace2eval.spark.digests import usage_from_spans
from trace2eval.spark.location import UCTraceLocation
from trace2eval.spark.rows import REQUEST_ID, RowTrace, otel_trace_id, trace_from_record


def fetch_traces(spark, tables, trace_ids: list[str]) -> dict[str, Any]:
    """{trace id: mlflow Trace} for the ids found; missing ids are simply absent."""
    from pyspark.sql import functions as F

    wanted = {otel_trace_id(t): t for t in trace_ids}
    if not wanted:
        return {}
    rows = tables.spans.where(F.col("trace_id").isin(list(wanted))).collect()
    spans: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        spans[row["trace_id"]].append(row.asDict())
    metadata: dict[str, dict] = {}
    if tables.metadata is not None:
        for row in tables.metadata.where(F.col("otel_trace_id").isin(list(wanted))).collect():
            metadata[row["otel_trace_id"]] = row.asDict()
    found = {}
    for otel_id, span_rows in spans.items():
        meta = metadata.get(otel_id, {})
        record = {
            "trace_id": otel_id,
            "spans": span_rows,
            "trace_metadata": meta.get("trace_metadata"),
            "tags": meta.get("tags"),
            "assessments": None,
        }
        light = trace_from_record(record, usage_from_spans=usage_from_spans)
        if light is None:
            continue
        try:
            trace = to_mlflow_trace(light, otel_id, tables.location)
        except Exception:  # ids MLflow cannot encode (not OpenTelemetry hex): the light trace serves
            trace = light
        found[wanted.get(otel_id, light.info.trace_id)] = trace
        found.setdefault(light.info.trace_id, trace)
    return found


def to_mlflow_trace(light: RowTrace, otel_id: str, location: UCTraceLocation):
    """An `mlflow.entities.Trace` from a light trace (spans re-serialized the way MLflow stores them)."""
    from mlflow.entities import Trace, TraceData, TraceInfo, TraceState
    from mlflow.entities.span import Span

    trace_b64 = base64.b64encode(bytes.fromhex(otel_id.rjust(32, "0"))).decode()
    spans = []
    for s in light.data.spans:
        attributes = {
            k: json.dumps(v, ensure_ascii=False, default=str) for k, v in s.attributes.items() if v is not None
        }
        attributes[REQUEST_ID] = json.dumps(light.info.trace_id)
        spans.append(
            Span.from_dict(
                {
                    "trace_id": trace_b64,
                    "span_id": _b64_id(s.span_id),
                    "parent_span_id": _b64_id(s.parent_id) if s.parent_id else None,
                    "name": s.name,
                    "start_time_unix_nano": s.start_time_ns or 0,
                    "end_time_unix_nano": s.end_time_ns,
                    "status": {"code": f"STATUS_CODE_{s.status.status_code}", "message": s.status.description},
                    "attributes": attributes,
                    "events": [
                        {"name": e.name, "time_unix_nano": e.timestamp or 0, "attributes": e.attributes}
                        for e in s.events
                    ],
                }
            )
        )
    info = TraceInfo(
        trace_id=light.info.trace_id,
        trace_location=_trace_location(location),
        request_time=light.info.request_time,
        state=TraceState(light.info.state),
        execution_duration=light.info.execution_duration,
        trace_metadata=dict(light.info.trace_metadata),
        tags=dict(light.info.tags),
    )
    return Trace(info=info, data=TraceData(spans=spans))


def _b64_id(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id.rjust(16, "0")[-16:])).decode()


def _trace_location(location: UCTraceLocation):
    from mlflow.entities.trace_location import TraceLocation, TraceLocationType, UCSchemaLocation, UnityCatalog

    if location.prefix:
        return TraceLocation(
            type=TraceLocationType.UC_TABLE_PREFIX,
            uc_table_prefix=UnityCatalog(location.catalog, location.schema, location.prefix),
        )
    return TraceLocation(
        type=TraceLocationType.UC_SCHEMA, uc_schema=UCSchemaLocation(location.catalog, location.schema)
    )
