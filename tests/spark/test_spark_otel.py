"""MLflow traces as OpenTelemetry span rows and trace-metadata rows (no Spark needed)."""

from __future__ import annotations

import json

from trace2eval.spark.otel import trace_to_metadata_row, trace_to_span_rows


def test_span_rows_follow_the_otel_layout(store):
    trace_id = store.add(
        "Cancel order 42",
        None,
        status="ERROR",
        exception=("TimeoutError", "took 30000 ms"),
        tools=[{"name": "get_order", "args": {"id": 42}, "error": True, "output": "Error: boom"}],
    )
    trace = store.trace(trace_id)
    rows = trace_to_span_rows(trace)
    assert len(rows) == len(trace.data.spans) == 3
    root = next(r for r in rows if r["parent_span_id"] == "")
    tool = next(r for r in rows if r["name"] == "get_order")
    assert root["trace_id"] == trace_id.removeprefix("tr-") and len(root["trace_id"]) == 32
    assert len(root["span_id"]) == 16 and tool["parent_span_id"] == root["span_id"]
    assert root["status"] == {"code": "STATUS_CODE_ERROR", "message": ""}
    assert root["kind"] == "SPAN_KIND_INTERNAL"
    assert root["end_time_unix_nano"] - root["start_time_unix_nano"] == 1000 * 1_000_000
    # Attributes hold MLflow's serialized values: JSON text, decoded by readers.
    assert json.loads(root["attributes"]["mlflow.spanType"]) == "AGENT"
    assert json.loads(root["attributes"]["mlflow.spanInputs"]) == {"query": "Cancel order 42"}
    assert json.loads(root["attributes"]["mlflow.traceRequestId"]) == trace_id
    assert json.loads(tool["attributes"]["mlflow.spanOutputs"]) == "Error: boom"
    event = root["events"][0]
    assert event["name"] == "exception" and event["attributes"]["exception.type"] == "TimeoutError"
    assert all(isinstance(v, str) for r in rows for v in r["attributes"].values())


def test_metadata_row(store):
    from mlflow.entities import AssessmentSource

    trace_id = store.add("hi", "hello")
    store.mlflow.log_feedback(
        trace_id=trace_id, name="user_ok", value=False, source=AssessmentSource(source_type="HUMAN", source_id="r")
    )
    row = trace_to_metadata_row(store.trace(trace_id))
    assert row["trace_id"] == trace_id and row["state"] == "OK" and row["execution_duration_ms"] == 1000
    assert all(isinstance(v, str) for v in row["trace_metadata"].values())
    assessments = json.loads(row["assessments"])
    assert assessments[0]["assessment_name"] == "user_ok" and assessments[0]["feedback"]["value"] is False
