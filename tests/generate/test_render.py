import ast

from trace2eval.generate.dataset import MAX_ROW_CHARS, _bounded
from trace2eval.generate.render import py_literal
from trace2eval.generate.scorers import ScorerSpec, render_scorers
from trace2eval.generate.script import render_eval_dataset, render_run_eval

HOSTILE = '"""\nimport os; os.system("touch /tmp/pwned")\n"""\' + __import__("os").getcwd() + \'\\'


def test_literals_round_trip_hostile_text():
    value = {"k": HOSTILE, "n": [1, 2.5, None, True]}
    assert ast.literal_eval(py_literal(value)) == value


def test_scorers_render_with_hostile_doc_and_params():
    specs = [
        ScorerSpec(
            name="tool_failures",
            implementation="code",
            check="tool_errors",
            params={"max": 0, "note": HOSTILE},
            doc=HOSTILE,
        ),
        ScorerSpec(name="policy_judge", implementation="guidelines", guidelines=[HOSTILE], doc=HOSTILE),
    ]
    code = render_scorers(specs, judge_model=None)
    tree = ast.parse(code)
    # The hostile text never becomes a statement: no module-level call to os.system exists.
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "system"]
    assert calls == []
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {
        "tool_failures",
        "get_code_scorers",
        "get_judge_scorers",
        "get_all_scorers",
        "trace_features",
        "run_check",
    } <= names


def test_a_scorer_named_like_a_copied_helper_keeps_its_function(store):
    """scorers.py copies the trace-reading helpers below the scorers; one of them is `policy_breaches`, and
    a later definition of the same name would replace the scorer (get_code_scorers would hand MLflow a
    plain helper function)."""
    specs = [
        ScorerSpec(name="policy_breaches", implementation="code", check="policy_breaches", params={"max": 0}, doc="x"),
        ScorerSpec(name="trace_features", implementation="code", check="error_traces", doc="x"),
        ScorerSpec(name="error_traces", implementation="code", check="error_traces", doc="x"),
    ]
    namespace: dict = {}
    exec(compile(render_scorers(specs, judge_model=None), "scorers.py", "exec"), namespace)
    scorers = namespace["get_code_scorers"]()
    assert [s.name for s in scorers] == ["policy_breaches", "trace_features", "error_traces"]
    assert namespace["error_traces"] is scorers[2]  # no clash: the function keeps the scorer's name
    trace = store.trace(store.add("cancel my order", "Cancelled.", status="ERROR"))
    assert [s(inputs=None, outputs=None, trace=trace).value for s in scorers] == [True, False, False]


def test_run_eval_and_dataset_loader_compile():
    ast.parse(render_run_eval("sqlite:////tmp/x.db", "7", "databricks:/judge", "trace2eval-x"))
    ast.parse(render_eval_dataset("3 rows"))


def test_two_megabyte_output_is_bounded():
    import json

    row = _bounded({"response": "y" * 2_000_000, "other": ["z" * 50_000] * 10})
    assert len(json.dumps(row)) <= MAX_ROW_CHARS + 200
    assert "truncated" in json.dumps(row)
