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
