"""MLflow traces as OpenTelemetry span rows, in the layout of the Unity Catalog trace tables.

The spans table follows the OpenTelemetry v1 span schema Databricks uses for MLflow traces in
Unity Catalog: hex ids, nanosecond times, `status` as a struct with a `STATUS_CODE_*` code, and
attributes as a string map holding MLflow's own JSON-serialized values (`mlflow.spanType`,
`mlflow.spanInputs`, `mlflow.spanOutputs`, `mlflow.traceRequestId`, …). The metadata table is
one row per trace: the MLflow trace id, trace metadata and tags as string maps, assessments as
JSON.

Used to build local stand-ins of a Unity Catalog location for tests, demos and benchmarks, and to
copy an experiment's traces into Delta tables. Pure Python; the writer lives in `export.py`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

SPANS_SCHEMA = (
    "trace_id STRING, span_id STRING, trace_state STRING, parent_span_id STRING, flags INT, name STRING, "
    "kind STRING, start_time_unix_nano BIGINT, end_time_unix_nano BIGINT, attributes MAP<STRING, STRING>, "
    "dropped_attributes_count INT, "
    "events ARRAY<STRUCT<time_unix_nano: BIGINT, name: STRING, attributes: MAP<STRING, STRING>, "
    "dropped_attributes_count: INT>>, dropped_events_count INT, "
    "links ARRAY<STRUCT<trace_id: STRING, span_id: STRING, trace_state: STRING, attributes: MAP<STRING, STRING>, "
    "dropped_attributes_count: INT, flags: INT>>, dropped_links_count INT, "
    "status STRUCT<message: STRING, code: STRING>, "
    "resource STRUCT<attributes: MAP<STRING, STRING>, dropped_attributes_count: INT>, resource_schema_url STRING, "
    "instrumentation_scope STRUCT<name: STRING, version: STRING, attributes: MAP<STRING, STRING>, "
    "dropped_attributes_count: INT>, span_schema_url STRING"
)

METADATA_SCHEMA = (
    "trace_id STRING, request_time BIGINT, state STRING, execution_duration_ms BIGINT, "
    "trace_metadata MAP<STRING, STRING>, tags MAP<STRING, STRING>, assessments STRING"
)


def _hex(b64: str | None, width: int) -> str:
    if not b64:
        return ""
    return base64.b64decode(b64).hex().rjust(width, "0")


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def trace_to_span_rows(trace: Any) -> list[dict[str, Any]]:
    """One row per span of an `mlflow.entities.Trace`, in the spans-table layout."""
    rows = []
    for span in trace.data.spans:
        d = span.to_dict()  # MLflow's own OTel-shaped dict: base64 ids, serialized attributes
        status = d.get("status") or {}
        rows.append(
            {
                "trace_id": _hex(d["trace_id"], 32),
                "span_id": _hex(d["span_id"], 16),
                "trace_state": "",
                # OTLP writes an empty parent id for a root span, not a null.
                "parent_span_id": _hex(d.get("parent_span_id"), 16),
                "flags": 0,
                "name": d.get("name") or "",
                "kind": "SPAN_KIND_INTERNAL",
                "start_time_unix_nano": int(d["start_time_unix_nano"]),
                "end_time_unix_nano": int(d["end_time_unix_nano"]) if d.get("end_time_unix_nano") else None,
                "attributes": {str(k): _string(v) for k, v in (d.get("attributes") or {}).items()},
                "dropped_attributes_count": 0,
                "events": [
                    {
                        "time_unix_nano": int(e.get("time_unix_nano") or 0),
                        "name": e.get("name") or "",
                        "attributes": {str(k): _string(v) for k, v in (e.get("attributes") or {}).items()},
                        "dropped_attributes_count": 0,
                    }
                    for e in d.get("events") or []
                ],
                "dropped_events_count": 0,
                "links": [],
                "dropped_links_count": 0,
                "status": {"message": status.get("message") or "", "code": status.get("code") or "STATUS_CODE_UNSET"},
                "resource": {"attributes": {}, "dropped_attributes_count": 0},
                "resource_schema_url": "",
                "instrumentation_scope": {
                    "name": "mlflow",
                    "version": "",
                    "attributes": {},
                    "dropped_attributes_count": 0,
                },
                "span_schema_url": "",
            }
        )
    return rows


def trace_to_metadata_row(trace: Any) -> dict[str, Any]:
    """The trace-metadata row of an `mlflow.entities.Trace`."""
    info = trace.info
    state = getattr(info.state, "value", info.state)
    return {
        "trace_id": info.trace_id,
        "request_time": int(info.request_time or 0),
        "state": str(state),
        "execution_duration_ms": info.execution_duration,
        "trace_metadata": {str(k): str(v) for k, v in (info.trace_metadata or {}).items()},
        "tags": {str(k): str(v) for k, v in (info.tags or {}).items()},
        "assessments": json.dumps([a.to_dictionary() for a in info.assessments or []], default=str),
    }
