"""run_eval.py's program, imported as the module it is rendered from (no suite needed)."""

from __future__ import annotations

import pytest
from astshape import shape

from trace2eval.generate import evalscript
from trace2eval.generate.script import render_run_eval


def test_gates_hold_regress_and_improve_in_both_directions():
    spec = {
        "tolerance": 0.05,
        "judges": ["safety"],
        "gates": {
            "tool_failures/mean": 0.9,
            "slow_traces/mean": {"min": 0.5, "tolerance": 0.0},
            "latency/p95": {"max": 10.0},
            "safety/mean": 1.0,
        },
    }
    metrics = {"tool_failures/mean": 0.84, "slow_traces/mean": 0.6, "latency/p95": 12.0}
    verdicts = {
        r["metric"]: r["verdict"]
        for r in evalscript.check_gates(
            metrics, spec, scorer_names={"tool_failures", "slow_traces", "latency"}, skipped="--no-judges"
        )
    }
    assert verdicts == {
        "tool_failures/mean": "REGRESSED",
        "slow_traces/mean": "improved",
        "latency/p95": "REGRESSED",
        "safety/mean": "not run (--no-judges)",
    }


def test_a_scorer_that_ran_without_values_is_not_a_pass():
    spec = {"gates": {"tool_failures/mean": 0.9}}
    [result] = evalscript.check_gates({}, spec, scorer_names={"tool_failures"}, failed={"tool_failures"})
    assert result["verdict"] == "NO VALUE"
    [result] = evalscript.check_gates({}, spec, scorer_names={"tool_failures"})
    assert result["verdict"] == "REGRESSED"


def test_a_bad_gate_is_named():
    with pytest.raises(evalscript.GateFileError, match="gate 'x/mean'"):
        evalscript.check_gates({}, {"gates": {"x/mean": "high"}}, scorer_names=set())


@pytest.mark.parametrize("text", ['"""\nimport os\n"""', "'; __import__('os').system('x'); '", "\\", "x" * 300])
def test_rendering_replaces_only_the_settings(text):
    assert shape(render_run_eval(text, text, text, text)) == shape(render_run_eval("u", "1", "m", "n"))
    code = render_run_eval("sqlite:////s.db", "7", None, "run-x")
    assert "DEFAULT_EXPERIMENT_ID = '7'" in code and "DEFAULT_JUDGE_MODEL = None" in code


def test_mcnemar_exact_one_sided_and_the_bootstrap_interval():
    assert evalscript.mcnemar_p(0, 0) == 1.0
    assert evalscript.mcnemar_p(5, 0) == pytest.approx(1 / 32)  # five regressions, no fixes: significant
    assert evalscript.mcnemar_p(4, 0) == pytest.approx(1 / 16)  # four are not, at 0.05
    assert evalscript.mcnemar_p(3, 3) > 0.5
    low, high = evalscript.bootstrap_interval([(True, True)] * 10)
    assert low == high == 0.0
    low, high = evalscript.bootstrap_interval([(True, False)] * 6 + [(True, True)] * 14)
    assert -0.55 <= low < -0.3 and -0.2 <= high < 0  # around the observed change, -0.3


def test_compare_scorer_gates_on_significance_or_on_an_explicit_tolerance():
    prod = [(True, "")] * 20
    cand = [(False, "")] * 5 + [(True, "")] * 15
    result = evalscript.compare_scorer("s", prod, cand, range(20), None)
    assert result["verdict"] == "REGRESSED" and result["regressed"] == [0, 1, 2, 3, 4]
    few = [(False, "")] * 2 + [(True, "")] * 18
    assert evalscript.compare_scorer("s", prod, few, range(20), None)["verdict"] == "ok"
    strict = evalscript.compare_scorer("s", prod, few, range(20), {"min": 1.0, "tolerance": 0.05})
    assert strict["verdict"] == "REGRESSED" and "tolerance" in strict["why"]
    errored = evalscript.compare_scorer("s", prod, [(None, "boom")] + few[1:], range(20), None)
    assert errored["rows"] == 19 and errored["unscored"] == 1


def test_a_conversation_is_replayed_turn_by_turn_with_the_candidates_replies():
    seen = []

    def ask(request):
        seen.append(request["messages"])
        return {"response": f"reply {len(seen)}"}

    inputs = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "cancel my order"},
            {"role": "assistant", "content": "recorded reply"},
            {"role": "user", "content": "yes, go ahead"},
        ]
    }
    outputs, turns = evalscript.replay(inputs, ask)
    assert turns == 2 and outputs == {"response": "reply 2"}
    assert [m["content"] for m in seen[1]] == ["be brief", "cancel my order", "reply 1", "yes, go ahead"]
    assert evalscript.replay({"query": "hi"}, lambda r: r["query"]) == ("hi", 1)


def test_expectation_judges_only_with_a_model_and_only_on_rows_with_their_expectation():
    rows = [
        {"inputs": {"query": "a"}, "outputs": "x", "expectations": {"expected_facts": ["x"]}},
        {"inputs": {"query": "b"}, "outputs": None, "expectations": {"guidelines": ["Be brief"]}},
        {"inputs": {"query": "c"}, "outputs": "z", "expectations": {"expected_response": "z"}},
        {"inputs": {"query": "d"}, "outputs": "w"},
    ]
    assert evalscript.expectation_judges(None, rows) == ([], {}, {})
    assert evalscript.rows_with_expectations(rows) == 3
    judges, counts, rows_for = evalscript.expectation_judges("databricks:/judge", rows)
    assert counts == {"correctness": 2, "expectations_guidelines": 1} and [j.name for j in judges] == list(counts)
    assert rows_for["expectations_guidelines"]["outputs"] == ""  # an edge case: no answer yet
    # A row without the judge's expectation gets no verdict, without calling the model.
    assert all(j.run(inputs={"query": "d"}, outputs="w", expectations={}) is None for j in judges)
    # A judge the suite already has is not added twice.
    assert evalscript.expectation_judges("databricks:/judge", rows, {"correctness"})[1] == {
        "expectations_guidelines": 1
    }
