"""The analysis says what the traces cannot support, and makes no finding from it."""

from __future__ import annotations

from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.findings import REGISTRY
from trace2eval.traces.digest import digest_trace


def _analysis(store, ids):
    analyzer = Analyzer()
    for tid in ids:
        analyzer.add(digest_trace(store.trace(tid)))
    return analyzer.finish()


def test_traces_without_tools_or_tokens_say_so(store):
    ids = [store.add({"query": f"question {i}"}, f"answer {i}." if i % 4 else "") for i in range(12)]
    analysis = _analysis(store, ids)
    coverage = analysis["coverage"]
    assert coverage["carries"] == {"tools": False, "tokens": False, "answers": True}
    assert coverage["missing"] == ["tools", "tokens"] and len(coverage["notes"]) == 2
    not_made = set(coverage["findings_not_made"])
    assert {"tool_failures", "unconfirmed_writes", "token_outliers"} <= not_made
    assert all(not set(REGISTRY[f["id"]].needs) & {"tools", "tokens"} for f in analysis["findings"])
    assert "missing_answer" in {f["id"] for f in analysis["findings"]}  # answers are carried: still judged


def test_traces_with_tools_carry_them(store):
    ids = [
        store.add(
            {"query": f"cancel order {i}"},
            "Done.",
            tools=[{"name": "cancel_order", "args": {"order_id": f"A{i}"}, "output": {"error": "down"}}],
        )
        for i in range(10)
    ]
    coverage = _analysis(store, ids)["coverage"]
    assert coverage["carries"]["tools"] and "tools" not in coverage["missing"]
    assert "tool_failures" not in coverage["findings_not_made"]
