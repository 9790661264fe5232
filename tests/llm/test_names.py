"""Scorer names a model may choose: they become function names in scorers.py."""

from trace2eval.llm.names import check_name, reserved_names


def test_names_that_scorers_py_or_python_define_are_refused():
    assert "trace_features" in reserved_names() and "run_check" in reserved_names()
    assert check_name("trace_features", set()) and check_name("len", set()) and check_name("get_code_scorers", set())
    assert "already exists" in check_name("tool_failures", {"tool_failures"})[0]
    assert "snake_case" in check_name("BadName", set())[0]
    assert "snake_case" in check_name("x\nimport os", set())[0]
    assert check_name("policy_followed", {"tool_failures"}) == []
