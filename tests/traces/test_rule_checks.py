"""The declarative check interpreter: what each condition reads, and that no data can make it raise."""

from __future__ import annotations

import pytest

from trace2eval.generate import rules
from trace2eval.traces.checks import RULE_FEATURES, run_check

FEATURES = {
    "n_spans": 6,
    "n_tool_calls": 3,
    "n_tool_errors": 1,
    "gives_up": False,
    "status": "OK",
    "answer": "Your order has been cancelled.",
    "request": "Please cancel order 42",
    "user_turns": ["Please cancel order 42", "Yes, go ahead"],
    "tools": [
        {"name": "get_order", "args": '{"id": 42}', "ok": True, "error": None, "nested": False},
        {"name": "cancel_order", "args": '{"id": 42}', "ok": False, "error": "order locked", "nested": False},
        {"name": "transfer_to_human", "args": "{}", "ok": True, "error": None, "nested": False},
    ],
}


def verdict(fail_when, features=FEATURES):
    return run_check("rule", features, {"fail_when": fail_when, "message": "claimed a cancellation"})


@pytest.mark.parametrize(
    "cond, fails",
    [
        ({"feature": "n_tool_errors", "op": ">", "value": 0}, True),
        ({"feature": "n_tool_errors", "op": ">", "value": 1}, False),
        ({"feature": "gives_up", "op": "==", "value": True}, False),
        ({"feature": "status", "op": "==", "value": "OK"}, True),
        ({"feature": "status", "op": "<", "value": "OK"}, False),  # order comparisons only between numbers
        ({"feature": "no_such_feature", "op": ">", "value": 0}, False),
        ({"text": "answer", "contains_any": ["CANCELLED"]}, True),  # case-insensitive
        ({"text": "answer", "words_any": ["cancel"]}, False),  # whole words: "cancelled" is not "cancel"
        ({"text": "answer", "words_any": ["has been cancelled"]}, True),
        ({"text": "last_user_turn", "words_any": ["go ahead"]}, True),
        ({"text": "tool_errors", "contains_any": ["locked"]}, True),
        ({"text": "tool_names", "contains_any": ["refund"]}, False),
        ({"tool_calls": {"name_contains": "cancel", "ok": True}, "op": "==", "value": 0}, True),
        ({"tool_calls": {"name": "get_order", "args_contains": "42"}, "op": ">=", "value": 1}, True),
        (
            {
                "all": [
                    {"text": "answer", "words_any": ["cancelled"]},
                    {"tool_calls": {"name_contains": "cancel", "ok": True}, "op": "==", "value": 0},
                ]
            },
            True,
        ),
        (
            {
                "any": [
                    {"feature": "gives_up", "op": "==", "value": True},
                    {"feature": "n_spans", "op": "<", "value": 2},
                ]
            },
            False,
        ),
        ({"not": {"feature": "gives_up", "op": "==", "value": True}}, True),
    ],
)
def test_each_condition_reads_what_it_says(cond, fails):
    passed, rationale = verdict(cond)
    assert passed is (not fails)
    if fails:
        assert rationale.startswith("claimed a cancellation (")


def test_a_rule_that_reads_spans_says_when_there_is_no_trace_to_check():
    bare = {"n_spans": 1, "answer": "done", "tools": []}
    passed, rationale = verdict({"tool_calls": {"ok": True}, "op": "==", "value": 0}, bare)
    assert passed and rationale.startswith("no trace to check")
    assert verdict({"text": "answer", "contains_any": ["done"]}, bare)[0] is False  # text needs no spans


@pytest.mark.parametrize(
    "junk",
    [
        None,
        [],
        "x",
        {"all": None},
        {"any": [None, 3]},
        {"not": None},
        {"feature": None, "op": None},
        {"text": "answer", "contains_any": None},
        {"tool_calls": "x", "op": ">", "value": "y"},
        {"feature": "tools", "op": ">", "value": 1},
    ],
)
def test_no_condition_or_feature_value_makes_the_interpreter_raise(junk):
    features = {**FEATURES, "tools": [None, {"name": None}, "x"] + FEATURES["tools"], "user_turns": None}
    passed, rationale = verdict(junk, features)
    assert isinstance(passed, bool) and isinstance(rationale, str)


def test_the_language_lists_only_features_the_extractor_produces():
    from trace2eval.traces.features import trace_features

    produced = set(trace_features(None))
    assert set(RULE_FEATURES) <= produced


def test_limits_and_description():
    deep = {"feature": "n_tool_calls", "op": ">", "value": 1}
    for _ in range(4):
        deep = {"not": deep}
    assert "nest at most" in rules.limits(deep)[0]
    wide = {"any": [{"feature": "n_tool_calls", "op": ">", "value": i} for i in range(8)]}
    assert rules.limits({"all": [wide, wide]}) == ["at most 16 conditions in one check (got 19)"]
    assert rules.describe(
        {"all": [{"text": "answer", "words_any": ["sorry"]}, {"tool_calls": {"ok": False}, "op": ">", "value": 0}]}
    ) == ("(answer has any of the words ['sorry'] and count of tool calls (ok=False) > 0)")


def test_the_features_contract_is_what_trace_features_returns(store):
    from trace2eval.traces.features import ToolCall, TraceFeatures, trace_features

    tid = store.add("Cancel order 7", "Done.", tools=[{"name": "cancel_order", "args": {"id": 7}, "error": True}])
    features = trace_features(store.trace(tid))
    assert set(features) == set(TraceFeatures.__annotations__)
    assert set(features["tools"][0]) == set(ToolCall.__annotations__)
