"""Outliers of an experiment's own distribution are reported, not counted as failures, unless the
experiment's traces show its outliers go wrong more often than the rest."""

from types import SimpleNamespace

from trace2eval.analysis.findings import REGISTRY, _outlier
from trace2eval.generate.scorers import ScorerSpec, render_scorers

TYPES = SimpleNamespace(names=["all"], terms=[["x"]], labels=[])


def rows(distressed_outliers: bool):
    out = []
    for i in range(40):
        long = i < 4
        out.append(
            {
                "trace_id": f"t{i}",
                "n_tool_calls": 20 if long else 3 + i % 2,
                "request": "x",
                "status": "OK",
                # distress either sits on the long traces or is spread over the others
                "need_open": (long and distressed_outliers) or (not distressed_outliers and i % 10 == 5),
                "n_user_pushback": 0,
            }
        )
    return out


def test_outliers_that_end_in_trouble_count_as_failures():
    spec = REGISTRY["long_tool_chains"]
    assert spec.outlier
    derived = _outlier(rows(True), spec.check, spec.derive(rows(True), TYPES))
    assert "report_only" not in derived.params and derived.severity is None
    assert "counted as a failure: 4 of 4 outliers" in derived.rationale


def test_outliers_of_a_healthy_agent_are_only_reported():
    spec = REGISTRY["long_tool_chains"]
    derived = _outlier(rows(False), spec.check, spec.derive(rows(False), TYPES))
    assert derived.params["report_only"] and derived.severity == "low"
    assert "reported as an outlier, not a failure: 0 of 4 outliers" in derived.rationale
    assert "outliers, not failures" in derived.title


def test_failure_checks_are_never_outliers():
    for fid in ("error_traces", "tool_failures", "user_pushback", "unbacked_claims", "ungrounded_writes"):
        assert not REGISTRY[fid].outlier


def test_a_report_only_scorer_passes_the_outlier_and_says_so(store):
    tid = store.add("look it up", "done.", tools=[{"name": "lookup", "args": {"q": i}} for i in range(6)])
    code = render_scorers(
        [
            ScorerSpec(
                name="long_tool_chains",
                implementation="code",
                check="long_tool_chains",
                params={"max": 2, "report_only": True},
                doc="x",
            ),
            ScorerSpec(name="tool_budget", implementation="code", check="long_tool_chains", params={"max": 2}, doc="x"),
        ],
        None,
    )
    namespace: dict = {}
    exec(compile(code, "scorers.py", "exec"), namespace)
    reported, failing = namespace["get_code_scorers"]()
    trace = store.trace(tid)
    fb = reported(inputs=None, outputs=None, trace=trace)
    assert fb.value is True and fb.rationale.startswith("outlier (reported, not a failure): 6 tool calls")
    assert fb.metadata == {"outlier": True}
    assert failing(inputs=None, outputs=None, trace=trace).value is False


def test_a_heuristic_that_holds_for_most_traces_is_the_agents_habit():
    from trace2eval.analysis.findings import HABIT_SHARE, _habit

    spec = REGISTRY["unconfirmed_writes"]
    assert spec.habit
    habitual = [{"n_write_calls": 1, "n_unconfirmed_writes": int(i % 2 == 0)} for i in range(20)]
    derived = _habit(habitual, spec.check, spec.derive(habitual, TYPES))
    assert derived.params["report_only"] and derived.severity == "low" and "10 of 20 traces (50%" in derived.rationale
    rare = [{"n_write_calls": 1, "n_unconfirmed_writes": int(i < HABIT_SHARE * 10)} for i in range(20)]
    assert "report_only" not in _habit(rare, spec.check, spec.derive(rare, TYPES)).params
