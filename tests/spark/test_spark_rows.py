"""Traces rebuilt from OpenTelemetry span rows digest exactly like the MLflow traces they came from.

No Spark here: this is the per-trace half of the engine, run on the driver.
"""

from __future__ import annotations

import json
import random

import pytest
from spanrows import canonical_rows, record

from trace2eval.spark.digests import digest_columns, digest_record, usage_from_spans
from trace2eval.spark.rows import (
    GEN_AI_SPAN_TYPES,
    decode_attribute,
    otel_trace_id,
    span_from_row,
    status_code,
    trace_from_record,
)
from trace2eval.traces.digest import digest_trace
from trace2eval.traces.features import trace_features


def _all_traces(store_uri, experiment_id):
    from mlflow import MlflowClient

    client = MlflowClient(store_uri)
    return list(client.search_traces(locations=[experiment_id], max_results=500))


def _same(a, b):
    return json.loads(json.dumps(a, default=str)) == json.loads(json.dumps(b, default=str))


@pytest.fixture(scope="module")
def traces(hostile_store, demo_store):
    return _all_traces(hostile_store.uri, hostile_store.experiment_id) + _all_traces(
        demo_store["uri"], demo_store["experiment_id"]
    )


@pytest.mark.parametrize("metadata", [True, False], ids=["with-metadata", "spans-only"])
def test_rebuilt_traces_digest_exactly_like_mlflow(traces, metadata):
    assert len(traces) > 50
    for trace in traces:
        rebuilt = trace_from_record(record(trace, metadata=metadata), usage_from_spans=usage_from_spans)
        assert _same(digest_trace(rebuilt, "label"), digest_trace(trace, "label")), trace.info.trace_id


def test_token_usage_from_spans_matches_what_mlflow_recorded(traces):
    nested = [t for t in traces if t.data.spans[0].inputs == {"query": "tied 0"}]
    assert nested and nested[0].info.token_usage["input_tokens"] == 50  # the parent already counts its children
    for trace in traces:
        rebuilt = trace_from_record(record(trace, metadata=False), usage_from_spans=usage_from_spans)
        assert rebuilt.info.token_usage == trace.info.token_usage, trace.info.trace_id


def test_row_order_and_duplicate_rows_do_not_matter(traces):
    rng = random.Random(3)
    for trace in traces[:25]:
        rows = canonical_rows(trace)
        shuffled = rows + [dict(r) for r in rng.sample(rows, k=min(2, len(rows)))]  # at-least-once ingestion
        rng.shuffle(shuffled)
        rebuilt = trace_from_record(record(trace, rows=shuffled), usage_from_spans=usage_from_spans)
        assert _same(digest_trace(rebuilt), digest_trace(trace))


def test_duplicate_of_an_unfinished_span_keeps_the_finished_copy(traces):
    trace = traces[0]
    rows = canonical_rows(trace)
    root = next(r for r in rows if r["parent_span_id"] is None)
    early = dict(root, end_time_unix_nano=None, attributes=json.dumps({}))
    rebuilt = trace_from_record(record(trace, rows=[early] + rows), usage_from_spans=usage_from_spans)
    assert rebuilt.info.state == str(trace.info.state.value)
    assert _same(trace_features(rebuilt), trace_features(trace))


def test_plain_and_typed_attribute_values_read_like_mlflow_json(traces):
    """Other writers store plain strings (not JSON) or typed values (a VARIANT column)."""
    for trace in traces[:20]:
        plain, typed = [], []
        for row in canonical_rows(trace):
            attrs = json.loads(row["attributes"])
            decoded = {k: json.loads(v) for k, v in attrs.items()}
            plain.append(
                dict(
                    row,
                    attributes=json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}),
                )
            )
            typed.append(dict(row, attributes=json.dumps(decoded)))
        for rows in (plain, typed):
            rebuilt = trace_from_record(record(trace, rows=rows), usage_from_spans=usage_from_spans)
            assert _same(trace_features(rebuilt), trace_features(trace))


def test_decoding_matches_mlflow_span_attributes():
    from mlflow.entities.span import Span

    values = ['"TOOL"', "TOOL", '{"a": [1, 2]}', "0", "", "null", "[1", "true", '"é 注"']
    span = Span.from_dict(
        {
            "trace_id": "AAAAAAAAAAAAAAAAAAAAAQ==",
            "span_id": "AAAAAAAAAAE=",
            "parent_span_id": None,
            "name": "s",
            "start_time_unix_nano": 1,
            "end_time_unix_nano": 2,
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": {"mlflow.traceRequestId": '"tr-1"', **{f"k{i}": v for i, v in enumerate(values)}},
            "events": [],
        }
    )
    for i, v in enumerate(values):
        assert decode_attribute(v) == span.get_attribute(f"k{i}"), v


def test_status_codes_and_ids():
    assert [
        status_code(c) for c in ("STATUS_CODE_ERROR", "ERROR", 2, "2", "status_code_ok", "OK", 1, None, "", "X")
    ] == ["ERROR", "ERROR", "ERROR", "ERROR", "OK", "OK", "OK", "UNSET", "UNSET", "UNSET"]
    hexid = "0af7651916cd43dd8448eb211c80319c"
    assert otel_trace_id(f"tr-{hexid}") == hexid
    assert otel_trace_id(f"trace:/main.agents/{hexid.upper()}") == hexid
    assert otel_trace_id(hexid) == hexid


def test_root_state_and_incomplete_traces():
    def row(span_id, parent=None, end=2_000_000, code="STATUS_CODE_UNSET"):
        return {
            "span_id": span_id,
            "parent_span_id": parent,
            "name": span_id,
            "start_time_unix_nano": 1_000_000,
            "end_time_unix_nano": end,
            "status_code": code,
            "attributes": "{}",
            "events": "[]",
        }

    ok = trace_from_record({"trace_id": "ab" * 16, "spans": [row("r")]})
    assert ok.info.state == "OK" and ok.info.execution_duration == 1 and ok.info.request_time == 1
    assert ok.info.trace_id == "ab" * 16  # no mlflow.traceRequestId attribute: the OpenTelemetry id
    running = trace_from_record({"trace_id": "ab" * 16, "spans": [row("r", end=None)]})
    assert running.info.state == "IN_PROGRESS" and running.info.execution_duration is None
    assert trace_from_record({"trace_id": "ab" * 16, "spans": [row("c", parent="r")]}) is None
    skipped = digest_record({"trace_id": "ab" * 16, "spans": [row("c", parent="r")]})
    assert skipped["skipped"] == "incomplete" and skipped["digest"] is None


def test_a_trace_that_breaks_the_digest_becomes_a_skipped_row():
    # Token usage that is not a number makes the feature code raise: one such trace must not
    # fail a job over millions, it is counted and reported instead.
    attrs = {"mlflow.spanType": '"CHAT_MODEL"', "mlflow.chat.tokenUsage": '{"input_tokens": "lots"}'}
    bad = {
        "trace_id": "cd" * 16,
        "spans": [
            {
                "span_id": "r",
                "parent_span_id": None,
                "name": "llm",
                "start_time_unix_nano": 1,
                "end_time_unix_nano": 2,
                "status_code": "STATUS_CODE_OK",
                "attributes": json.dumps(attrs),
            }
        ],
    }
    out = digest_record(bad)
    assert out["skipped"] == "error" and out["digest"] is None
    assert out["failure"].startswith("ValueError") and out["trace_id"] == "cd" * 16


def test_genai_semantic_convention_spans():
    row = {
        "span_id": "t",
        "parent_span_id": "r",
        "name": "get_weather",
        "start_time_unix_nano": 1,
        "end_time_unix_nano": 2,
        "status_code": "STATUS_CODE_OK",
        "attributes": json.dumps(
            {"gen_ai.operation.name": "execute_tool", "gen_ai.input.messages": '{"city": "Oslo"}'}
        ),
        "events": None,
    }
    span = span_from_row(row)
    assert span.span_type == GEN_AI_SPAN_TYPES["execute_tool"] == "TOOL"
    assert span.inputs == {"city": "Oslo"} and span.outputs is None


def test_digest_columns_mirror_what_the_analyzer_keeps(traces):
    trace = max(traces, key=lambda t: len(t.data.spans))
    digest = digest_trace(trace)
    cols = digest_columns(digest, "ab" * 16)
    assert json.loads(cols["digest"]) == json.loads(json.dumps(digest))
    assert cols["tokens"] == digest["tokens_in"] + digest["tokens_out"]
    assert [t["name"] for t in cols["tools"]] == [t["name"] for t in digest["tools"][:40]]
    assert cols["span_types"] == list(digest["span_types"])
