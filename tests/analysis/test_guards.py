"""Guards: failure checks that apply to the traces and that none of them fails yet. The suite keeps them,
so the first trace (or candidate answer) that fails one is caught; outliers and reported evidence are no
guards."""

from __future__ import annotations

from trace2eval.analysis.analyze import Analyzer
from trace2eval.generate.scorers import render_scorers, specs_from_analysis
from trace2eval.traces.digest import digest_trace

TURNS = ["Please change the address of my order W1 to 5 Elm St.", "Yes, go ahead."]


LOOKED_UP = {"name": "get_order", "args": {"order_id": "W1"}, "output": {"order_id": "W1", "status": "pending"}}
UPDATED = {"name": "update_address", "args": {"order_id": "W1", "address": "5 Elm St"}, "output": {"ok": True}}
FAILED = {"name": "update_address", "args": {"order_id": "W1", "address": "5 Elm St"}, "error": True}


def _update(store, *tools, status="OK"):
    """A conversation that changes order W1's address (after the user's go-ahead) with these calls."""
    return store.add(
        TURNS[0],
        "I've updated the address of order W1 to 5 Elm St.",
        user_turns=TURNS,
        tools=list(tools),
        status=status,
    )


def _healthy(store, n=12):
    """Conversations that look an order up and change it after the user's go-ahead: nothing fails."""
    return [_update(store, LOOKED_UP, UPDATED) for _ in range(n)]


def _analysis(store, ids):
    analyzer = Analyzer()
    for tid in ids:
        analyzer.add(digest_trace(store.trace(tid)))
    return analyzer.finish()


def test_failure_checks_no_trace_fails_are_guards_not_findings(store):
    analysis = _analysis(store, _healthy(store))
    guards = {g["id"]: g for g in analysis["guards"]}
    findings = {f["id"] for f in analysis["findings"]}
    # Every failure check these traces can be read for, and none that any of them fails.
    assert {"error_traces", "tool_failures", "missing_answer", "unbacked_claims", "ungrounded_writes"} <= set(guards)
    assert not set(guards) & findings
    # No call failed here: a first failure counts only when nothing succeeded after it.
    assert guards["tool_failures"]["checked"] == 12
    assert guards["tool_failures"]["params"] == {"max": 0, "unrecovered_only": True}
    # An outlier threshold or reported evidence fails nothing on its own: no guard.
    assert not {"long_tool_chains", "slow_traces", "repeated_calls", "need_left_open", "user_repeats"} & set(guards)


def test_a_guard_scorer_passes_production_and_fails_the_first_failure(store):
    ids = _healthy(store)
    analysis = _analysis(store, ids)
    specs = {s.name: s for s in specs_from_analysis(analysis)}
    guard = specs["tool_failures"]
    assert guard.is_code and guard.finding is None
    assert (
        guard.doc.startswith("Guard: Tool failures the agent did not recover from.")
        and "None of the 12 production trace(s)" in guard.doc
    )
    namespace: dict = {}
    exec(compile(render_scorers([guard, specs["error_traces"]], None), "scorers.py", "exec"), namespace)
    tool_failures, error_traces = namespace["get_code_scorers"]()
    for tid in ids:
        assert tool_failures(inputs=None, outputs=None, trace=store.trace(tid)).value is True
        assert error_traces(inputs=None, outputs=None, trace=store.trace(tid)).value is True

    # A new version whose write fails, and whose run ends in an error.
    broken = _update(store, LOOKED_UP, FAILED, status="ERROR")
    assert tool_failures(inputs=None, outputs=None, trace=store.trace(broken)).value is False
    assert error_traces(inputs=None, outputs=None, trace=store.trace(broken)).value is False
    # A failure the agent recovered from (the retry succeeded) passes the guard.
    retried = _update(store, FAILED, UPDATED)
    assert tool_failures(inputs=None, outputs=None, trace=store.trace(retried)).value is True


def test_labels_leave_guards_alone(store):
    """Labels judge findings on the traces they flag; a guard flags none, so labels cannot drop it."""
    from mlflow.entities import AssessmentSource

    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")
    ids = _healthy(store)
    for i, tid in enumerate(ids):
        store.mlflow.log_feedback(trace_id=tid, name="reviewer", value=i % 2 == 0, source=human)
    analyzer = Analyzer(label_name="reviewer")
    for tid in ids:
        analyzer.add(digest_trace(store.trace(tid), label_name="reviewer"))
    analysis = analyzer.finish()
    assert {"tool_failures", "unbacked_claims"} <= {g["id"] for g in analysis["guards"]}
