"""`merge_turns`: a conversation traced once per user turn, read as one trace.

The session-level scorers and the analysis both judge a per-turn conversation through it, so a
failure the agent recovered from in a later turn is not a failure of the conversation, and counts
are the conversation's, as if it had been traced once.
"""

from __future__ import annotations

from trace2eval.traces.checks import run_check
from trace2eval.traces.features import merge_turns


def _turn(request: str, tools: list[tuple[str, bool]], **extra) -> dict:
    errors = sum(not ok for _, ok in tools)
    last_ok = max((i for i, (_, ok) in enumerate(tools) if ok), default=-1)
    features = {
        "status": "OK",
        "duration_ms": 100.0,
        "n_spans": 1 + len(tools),
        "root_name": "agent",
        "span_types": {"AGENT": 1, "TOOL": len(tools)},
        "request": request,
        "request_shape": "messages",
        "answer": f"answer to {request}",
        "has_answer": True,
        "tools": [
            {"name": n, "ok": ok, "error": None if ok else "boom", "ms": 1.0, "nested": False} for n, ok in tools
        ],
        "n_tool_calls": len(tools),
        "n_distinct_tools": len({n for n, _ in tools}),
        "n_tool_errors": errors,
        "n_unrecovered_tool_errors": sum(not ok for _, ok in tools[last_ok + 1 :]),
        "max_identical_calls": 1 if tools else 0,
        "max_same_tool_streak": 1 if tools else 0,
        "n_write_calls": sum(n.startswith("update") for n, _ in tools),
        "n_unconfirmed_writes": 0,
        "n_ungrounded_writes": 0,
        "ungrounded_writes": [],
        "llm_calls": 1,
        "tokens_in": 10,
        "tokens_out": 5,
        "n_user_turns": 1,
        "user_turns": [request],
        "n_user_pushback": 0,
        "n_user_repeats": 0,
        "need_open": False,
        "n_unbacked_claims": 0,
        "unbacked_claims": [],
    }
    return {**features, **extra}


def test_an_error_recovered_in_a_later_turn_is_not_unrecovered():
    turns = [
        _turn("Change my address to 5 Elm Street please.", [("get_order", True), ("update_address", False)]),
        _turn("Please try again.", [("update_address", True)], trace_id="t2"),
    ]
    assert turns[0]["n_unrecovered_tool_errors"] == 1  # turn 1 alone ends in a failure
    merged = merge_turns(turns)
    assert merged["n_tool_calls"] == 3 and merged["n_tool_errors"] == 1
    assert merged["n_unrecovered_tool_errors"] == 0
    assert merged["trace_id"] == "t2"  # the conversation is named by the turn its answer ends in
    assert merged["request"].startswith("Change my address") and merged["answer"] == "answer to Please try again."
    assert merged["duration_ms"] == 200.0 and merged["tokens_in"] == 20 and merged["span_types"]["TOOL"] == 3


def test_an_error_at_the_end_of_the_conversation_stays_unrecovered():
    turns = [_turn("Where is order 7?", [("get_order", True)]), _turn("Cancel it.", [("cancel_order", False)])]
    merged = merge_turns(turns)
    assert merged["n_unrecovered_tool_errors"] == 1
    passed, _ = run_check("tool_errors", merged, {})
    assert passed is False


def test_user_signals_come_from_the_turns_when_requests_hold_only_their_own_turn():
    """Each request carries one user message (a checkpointer keeps the history server-side): the
    conversation's user turns are the turns' requests, and the last one decides whether the need
    is still open."""
    turns = [
        _turn("I need to change the shipping address of order 7 to 5 Elm Street.", []),
        _turn("You didn't change it, I need to change the shipping address of order 7 to 5 Elm Street.", []),
        _turn("Is it done now?", []),
    ]
    merged = merge_turns(turns)
    assert merged["n_user_turns"] == 3
    assert merged["n_user_pushback"] == 1 and merged["n_user_repeats"] == 1
    assert merged["need_open"] is True


def test_user_signals_come_from_the_last_turn_when_it_carries_the_conversation():
    last = _turn("Thanks!", [], n_user_turns=3, n_user_pushback=2, need_open=False)
    merged = merge_turns([_turn("Hi", []), _turn("Not what I asked", []), last])
    assert (merged["n_user_turns"], merged["n_user_pushback"], merged["need_open"]) == (3, 2, False)


def test_one_turn_is_itself():
    turn = _turn("Where is order 7?", [("get_order", True)])
    assert merge_turns([turn]) == turn and merge_turns([]) == {}


def test_a_lookup_repeated_after_a_write_checks_the_new_state_a_repeated_write_still_counts():
    from trace2eval.traces.features import max_identical_calls

    def calls(*names: str) -> list[dict]:
        return [{"name": n, "key": "same-args"} for n in names]

    assert max_identical_calls(calls("get_order", "cancel_order", "get_order")) == 1
    assert max_identical_calls(calls("get_order", "get_order", "cancel_order", "get_order")) == 2
    assert max_identical_calls(calls("get_order", "cancel_order", "get_order", "get_order")) == 2
    assert max_identical_calls(calls("cancel_order", "get_order", "cancel_order")) == 2  # the same write twice
    failed = [{"name": "get_order", "key": "k"}, {"name": "cancel_order", "key": "k", "ok": False}]
    assert max_identical_calls([*failed, {"name": "get_order", "key": "k"}]) == 2  # a failed write changed nothing
    assert max_identical_calls([failed[1], failed[1]]) == 2  # retried unchanged
    assert max_identical_calls([]) == 0
    turns = [_turn("cancel it", [("get_order", True), ("cancel_order", True)]), _turn("done?", [("get_order", True)])]
    for t in turns:
        for tool in t["tools"]:
            tool["key"] = "same-args"
    assert merge_turns(turns)["max_identical_calls"] == 1  # read back after the cancellation, in the next turn


def test_identical_calls_count_across_turns_and_the_answer_is_the_last_one_given():
    """The same lookup in three turns is the loop the single trace would show; a closing turn that
    ends in a hand-off call, with no text, leaves the conversation's answer the one before."""
    turns = [_turn(f"turn {i}", [("get_order", True)]) for i in range(3)]
    for t in turns:
        t["tools"][0]["key"] = "same-args"
    turns[-1].update(answer="", has_answer=False)
    merged = merge_turns(turns)
    assert merged["max_identical_calls"] == 3
    assert merged["has_answer"] is True and merged["answer"] == "answer to turn 1"


def test_a_write_recorded_without_arguments_still_changes_state_across_turns():
    """A turn digested before calls were keyed keeps its write: reading the order back in the next
    turn checks the new state. Calls without a key are never compared with each other."""
    turns = [_turn("check it", [("get_order", True)]), _turn("cancel it", [("cancel_order", True)])]
    turns.append(_turn("done?", [("get_order", True)]))
    turns[0]["tools"][0]["key"] = turns[2]["tools"][0]["key"] = "same-args"  # the write has no key
    assert merge_turns(turns)["max_identical_calls"] == 1
    unkeyed = [_turn(f"turn {i}", [("get_order", True)]) for i in range(3)]
    assert merge_turns(unkeyed)["max_identical_calls"] == 1


def test_the_longest_run_of_one_tool_spans_turns():
    from trace2eval.traces.features import max_same_tool_streak

    assert max_same_tool_streak([]) == 0
    assert max_same_tool_streak(["a", "a", "b", "a", "a", "a"]) == 3
    turns = [_turn("page 1", [("list_orders", True)]), _turn("page 2", [("list_orders", True), ("get_order", True)])]
    assert merge_turns(turns)["max_same_tool_streak"] == 2
