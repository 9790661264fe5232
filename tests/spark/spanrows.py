"""Span rows in the canonical projection, built in Python the way `tables.project_spans` builds them."""

from __future__ import annotations

import json

from trace2eval.spark.otel import trace_to_metadata_row, trace_to_span_rows


def canonical_rows(trace) -> list[dict]:
    rows = []
    for row in trace_to_span_rows(trace):
        rows.append(
            {
                "span_id": row["span_id"],
                "parent_span_id": row["parent_span_id"] or None,
                "name": row["name"],
                "start_time_unix_nano": row["start_time_unix_nano"],
                "end_time_unix_nano": row["end_time_unix_nano"],
                "status_code": row["status"]["code"],
                "status_message": row["status"]["message"],
                "attributes": json.dumps(row["attributes"]),
                "events": json.dumps(row["events"]),
            }
        )
    return rows


def record(trace, metadata: bool = True, rows: list[dict] | None = None) -> dict:
    rows = canonical_rows(trace) if rows is None else rows
    out = {
        "trace_id": trace_to_span_rows(trace)[0]["trace_id"],
        "spans": rows,
        "trace_metadata": None,
        "tags": None,
        "assessments": None,
    }
    if metadata:
        meta = trace_to_metadata_row(trace)
        out.update(
            trace_metadata=json.dumps(meta["trace_metadata"]),
            tags=json.dumps(meta["tags"]),
            assessments=meta["assessments"],
        )
    return out
