from types import SimpleNamespace

from trace2eval.generate.dataset import build_rows, select_cases


def _analysis():
    return {
        "findings": [
            {"id": "loops", "evidence": ["a", "b", "c", "d"], "counter_examples": ["z"]},
            {"id": "errors", "evidence": ["b", "e"], "counter_examples": ["y"]},
        ],
        "query_types": [{"name": "billing", "evidence": ["q1", "q2", "q3"]}, {"name": "shipping", "evidence": ["s1"]}],
        "samples": {"slowest": ["slow"], "baseline": ["base"], "random": ["r1", "r2"]},
        "request_shapes": [{"shape": "messages", "evidence": ["m1"]}],
        "error_patterns": [{"name": "TimeoutError", "message": "query exceeded <n> ms", "evidence": ["err1", "err2"]}],
    }


def test_every_finding_and_query_type_is_covered_in_priority_order():
    cases = select_cases(_analysis())
    ids = [c.trace_id for c in cases]
    assert ids[:4] == ["a", "b", "c", "e"]  # exhibits first, 3 per finding, shared ones merged
    b = next(c for c in cases if c.trace_id == "b")
    assert b.findings == ["loops", "errors"] and b.case_type == "failure"
    assert {"z", "y", "q1", "q2", "s1", "slow", "base", "m1", "r1", "err1"} <= set(ids)
    assert "err2" not in ids  # one example per error pattern
    assert len(select_cases(_analysis(), max_rows=3)) == 3


def _trace(tid, request, response="ok"):
    root = SimpleNamespace(parent_id=None, inputs={"query": request}, outputs={"response": response})
    info = SimpleNamespace(state="OK", execution_duration=5)
    return SimpleNamespace(data=SimpleNamespace(spans=[root]), info=info)


def test_near_identical_requests_collapse_but_failures_stay():
    from trace2eval.generate.dataset import Case

    traces = {
        "t1": _trace("t1", "Where is my order 1234?"),
        "t2": _trace("t2", "Where is my order 5678?"),  # same words once numbers are masked
        "t3": _trace("t3", "Where is my order 999?"),
        "t4": _trace("t4", "Cancel my subscription"),
    }
    cases = [
        Case("t1", case_type="sample"),
        Case("t2", case_type="sample"),
        Case("t3", case_type="failure"),
        Case("t4", case_type="sample"),
        Case("gone", case_type="sample"),
    ]
    rows, skipped = build_rows(cases, traces.get)
    assert [r["metadata"]["source_trace"] for r in rows] == ["t1", "t3", "t4"]
    assert rows[0]["metadata"]["near_duplicates"] == 1
    assert {s["trace_id"]: s["reason"] for s in skipped} == {"t2": "near-duplicate of t1", "gone": "trace not found"}


def test_rows_are_redacted_before_they_are_bounded():
    from trace2eval.generate.dataset import MAX_STRING_CHARS, Case

    pem = (
        "-----BEGIN "
        + "PRIVATE KEY-----\n"
        + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" * 2000
        + "-----END "
        + "PRIVATE KEY-----"
    )
    trace = _trace("t1", "x" * (MAX_STRING_CHARS - 100) + " " + pem)
    trace.data.spans[0].inputs["password"] = "Tulip-" + "Rain-51"
    rows, _ = build_rows(
        [Case("t1", reasons=["error pattern: denied for sk-" + "proj-Zq8RtY2uW4xN6vB0mK3jH5gF7dS9aL1p"])],
        {"t1": trace}.get,
    )
    text = str(rows[0])
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in text and "[REDACTED:private-key]" in text
    assert rows[0]["inputs"]["password"] == "[REDACTED:password]"
    assert "Zq8RtY2uW4xN6vB0mK3jH5gF7dS9aL1p" not in text
