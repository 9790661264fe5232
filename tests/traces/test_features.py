from trace2eval.traces.checks import run_check
from trace2eval.traces.digest import digest_trace
from trace2eval.traces.features import answer_text, request_shape, request_text, trace_features


def test_request_and_answer_shapes():
    assert request_text({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}) == "hi"
    assert request_text({"query": "q?"}) == "q?"
    assert request_text("plain") == "plain"
    assert request_shape({"messages": []}) == "messages"
    assert request_shape({"query": "x"}) == "query"
    assert request_shape("x") == "string"
    assert request_shape({"b": 1, "a": 2}) == "dict:a,b"
    assert answer_text({"response": "r"}) == "r"
    assert answer_text({"choices": [{"message": {"content": "c"}}]}) == "c"
    assert answer_text({"messages": [{"role": "assistant", "content": "m"}]}) == "m"
    assert answer_text(None) == ""
    assert answer_text({"response": None}) == ""


def test_features_of_a_real_trace(store):
    tid = store.add(
        "Cancel order 42",
        "Done, cancelled.",
        user_turns=["Cancel order 42", "yes please go ahead"],
        tools=[
            {"name": "get_order", "args": {"id": 42}},
            {"name": "get_order", "args": {"id": 42}},
            {"name": "cancel_order", "args": {"id": 42}},
            {"name": "lookup", "args": {}, "error": True, "output": "Error: boom"},
        ],
    )
    f = trace_features(store.trace(tid))
    assert f["status"] == "OK"
    assert f["n_tool_calls"] == 4 and f["n_tool_errors"] == 1
    assert f["max_identical_calls"] == 2
    assert f["n_write_calls"] == 1 and f["n_unconfirmed_writes"] == 0  # the user said yes first
    assert f["n_user_turns"] == 2
    assert f["answer"] == "Done, cancelled."
    assert run_check("tool_errors", f, {"max": 0})[0] is False
    assert "lookup" in run_check("tool_errors", f, {"max": 0})[1]
    assert run_check("no_repeated_calls", f, {"max": 1})[0] is False


def test_write_without_go_ahead_is_flagged(store):
    tid = store.add(
        "Change my address",
        "Updated.",
        user_turns=["Change my address to 1 Main St"],
        tools=[{"name": "update_address", "args": {"a": "1 Main St"}}],
    )
    f = trace_features(store.trace(tid))
    assert f["n_unconfirmed_writes"] == 1
    ok, why = run_check("confirmed_writes", f, {"max": 0})
    assert not ok and "without the user's go-ahead" in why


def test_error_trace_without_outputs(store):
    tid = store.add("hello", None, status="ERROR", exception=("TimeoutError", "query exceeded 30000 ms"))
    d = digest_trace(store.trace(tid))
    assert d["status"] == "ERROR" and not d["has_answer"]
    assert d["exceptions"][0][0] == "TimeoutError"
    assert "<n>" in d["exceptions"][0][1]  # numbers normalized so errors group
    assert run_check("trace_ok", d, {})[0] is False
    assert run_check("has_answer", d, {})[0] is False


def test_digest_is_small_for_huge_payloads(store):
    huge = "x" * 2_000_000
    tid = store.add("big one", huge, tools=[{"name": "fetch", "args": {"blob": huge}, "output": huge}])
    import json

    d = digest_trace(store.trace(tid))
    assert len(json.dumps(d)) < 5_000
    assert d["answer_chars"] == 2_000_000
    assert "chars]" in d["answer"]


def test_non_ascii_text_survives(store):
    tid = store.add("Où est ma commande ? 注文はどこ", "Elle arrive demain — 明日")
    d = digest_trace(store.trace(tid))
    assert "注文" in d["request"] and "明日" in d["answer"]


def test_minimal_row_trace_passes_span_checks():
    # MLflow gives dataset rows without a trace a one-span stand-in: span checks must not fail it.
    f = trace_features(None, {"query": "q"}, {"response": "an answer."})
    assert run_check("tool_errors", f, {"max": 0}) == (True, "no tool spans to inspect")
    assert run_check("has_answer", f, {})[0]


def test_span_records_read_what_mlflow_spans_hold(demo_store):
    # Features read spans from `Span.to_dict()` rather than MLflow's span objects (2x faster to
    # digest); every field they, or an LLM-written scorer, may use must read the same.
    from mlflow import MlflowClient

    from trace2eval.traces.features import trace_spans

    traces = MlflowClient(demo_store["uri"]).search_traces(locations=[demo_store["experiment_id"]], max_results=40)
    compared = errors = events = 0
    for trace in traces:
        records = trace_spans(trace)
        for record, span in zip(records, trace.data.spans, strict=True):
            assert type(record).__name__ == "_SpanRecord"
            assert (record.name, record.span_type, record.inputs, record.outputs) == (
                span.name,
                span.span_type,
                span.inputs,
                span.outputs,
            )
            assert record.attributes == span.attributes
            assert record.get_attribute("mlflow.spanType") == span.get_attribute("mlflow.spanType")
            assert record.status.status_code == span.status.status_code  # "ERROR" == SpanStatusCode.ERROR
            assert (record.start_time_ns, record.end_time_ns) == (span.start_time_ns, span.end_time_ns)
            assert (record.parent_id is None) == (span.parent_id is None)
            assert [(e.name, dict(e.attributes)) for e in record.events] == [
                (e.name, dict(e.attributes)) for e in span.events
            ]
            compared += 1
            errors += record.status.status_code == "ERROR"
            events += len(record.events)
        # parent links resolve among the records as they do among MLflow's spans
        ids = {r.span_id for r in records}
        assert sum(r.parent_id is not None and r.parent_id in ids for r in records) == sum(
            s.parent_id is not None for s in trace.data.spans
        )
    assert compared > 100 and errors > 0 and events > 0


def test_normalized_errors_stay_readable_and_group_by_shape():
    from trace2eval.traces.features import normalize_message

    assert normalize_message('{"error": "no data"}') == '{"error": "no data"}'
    assert normalize_message('{"error": "order 123 not found"}') == '{"error": "order <n> not found"}'
    same = {
        normalize_message(f"Timeout after {ms} ms calling order ord_{oid}x9 (request {rid})")
        for ms, oid, rid in [
            (3000, 123, "123e4567-e89b-12d3-a456-426614174000"),
            (4500, 987, "9c1f2a4b-0d3e-4f5a-8b6c-7d8e9f0a1b2c"),
        ]
    }
    assert same == {"timeout after <n> ms calling order <id> (request <id>)"}
    assert normalize_message("User's session can't be found") == "user's session can't be found"
    long_value = "x" * 60
    assert normalize_message(f"invalid value '{long_value}'") == "invalid value '<s>'"


def test_errors_are_redacted_before_they_are_lower_cased():
    from trace2eval.traces.features import normalize_message
    from trace2eval.traces.redact import redact_text

    key = "AKIA" + "Z7Q4W2E8R6T1Y3U5"
    out = normalize_message(f"AccessDenied for {key}", redact_text)
    assert "z7q4w2e8r6t1y3u5" not in out and "[redacted:aws-access-key]" in out
