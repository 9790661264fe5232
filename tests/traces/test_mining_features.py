"""The failure-mode features behind the generated scorers, on traces written to a real store."""

from trace2eval.traces.checks import classify_request, run_check
from trace2eval.traces.features import is_handoff_tool, is_write_tool, trace_features


def test_write_and_handoff_tools_are_named_by_generic_verbs():
    assert is_write_tool("cancel_reservation") and is_write_tool("updateUserAddress") and is_write_tool("send_email")
    assert not is_write_tool("get_order_details") and not is_write_tool("search_flights")
    assert is_handoff_tool("transfer_to_human_agents") and not is_write_tool("transfer_to_human_agents")


def test_argument_the_user_gave_is_grounded(store):
    tid = store.add(
        "Cancel order",
        "Cancelled.",
        user_turns=["Please cancel order W123456, yes go ahead"],
        tools=[{"name": "cancel_order", "args": {"order_id": "W123456", "reason": "no longer needed"}}],
    )
    f = trace_features(store.trace(tid))
    # "no longer needed" is nowhere in the conversation: the agent made it up.
    assert f["n_ungrounded_writes"] == 1 and "no longer needed" in f["ungrounded_writes"][0]
    assert not run_check("grounded_writes", f, {"max": 0})[0]


def test_argument_from_a_tool_result_is_grounded(store):
    tid = store.add(
        "Refund me",
        "Refunded.",
        user_turns=["Refund my last order please, yes"],
        tools=[
            {"name": "get_orders", "args": {}, "output": {"orders": [{"id": "W999001", "card": "card_7734"}]}},
            {"name": "refund_order", "args": {"order_id": "W999001", "payment": "card_7734"}},
        ],
    )
    f = trace_features(store.trace(tid))
    assert f["n_ungrounded_writes"] == 0
    assert run_check("grounded_writes", f, {"max": 0})[0]


def test_repeated_writes_and_recovery(store):
    tid = store.add(
        "Fix my booking",
        "Done.",
        user_turns=["fix it, yes"],
        tools=[
            {"name": "update_booking", "args": {"id": 1}, "error": True},
            {"name": "update_booking", "args": {"id": 2}},
            {"name": "update_booking", "args": {"id": 3}},
        ],
    )
    f = trace_features(store.trace(tid))
    assert f["max_write_repeats"] == 3
    assert f["n_tool_errors"] == 1 and f["n_unrecovered_tool_errors"] == 0  # a later call succeeded
    assert not run_check("repeated_writes", f, {"max": 2})[0]
    assert run_check("tool_errors", f, {"max": 0, "unrecovered_only": True})[0]
    assert not run_check("tool_errors", f, {"max": 0})[0]

    tid = store.add(
        "Look it up",
        "Sorry, something went wrong.",
        tools=[{"name": "lookup", "args": {"q": 1}}, {"name": "lookup", "args": {"q": 2}, "error": True}],
    )
    f = trace_features(store.trace(tid))
    assert f["n_unrecovered_tool_errors"] == 1
    ok, why = run_check("tool_errors", f, {"max": 0, "unrecovered_only": True})
    assert not ok and "nothing succeeded after them" in why


def test_answer_without_tools_is_flagged_only_for_real_traces(store):
    tid = store.add("What is my balance?", "It is 120 dollars.")
    assert not run_check("uses_tools", trace_features(store.trace(tid)), {"min": 1})[0]
    # A dataset row without its trace (MLflow's one-span stand-in) has nothing to inspect.
    assert run_check("uses_tools", trace_features(None, {"q": "x"}, {"response": "y"}), {"min": 1})[0]


def test_per_type_limits_use_the_request_type():
    types = [{"name": "sales", "terms": ["pipeline", "sales"]}, {"name": "supply", "terms": ["inventory", "warehouse"]}]
    assert classify_request("How is the sales pipeline?", types) == "sales"
    assert classify_request("Inventory in the Reno warehouse", types) == "supply"
    assert classify_request("hello there", types) is None
    params = {"max_ms": 10_000, "by_type": {"sales": 2_000, "supply": 30_000}, "types": types}
    slow_sale = {"request": "sales pipeline please", "duration_ms": 5_000, "n_spans": 3}
    slow_stock = {"request": "inventory in warehouse", "duration_ms": 5_000, "n_spans": 3}
    ok, why = run_check("latency_budget", slow_sale, params)
    assert not ok and "for sales requests" in why
    assert run_check("latency_budget", slow_stock, params)[0]
    assert not run_check("latency_budget", {"request": "hi", "duration_ms": 20_000, "n_spans": 3}, params)[0]


def _told_then_wrote(store, llm_inputs: dict, write_args: dict) -> str:
    """A trace whose model call was given `llm_inputs` (instructions, tools) and which then wrote."""
    from mlflow.entities import SpanType

    mlflow = store.mlflow
    root = mlflow.start_span_no_context(
        name="agent", span_type=SpanType.AGENT, inputs={"query": "cancel"}, experiment_id=store.experiment_id
    )
    llm = mlflow.start_span_no_context(name="llm", span_type=SpanType.CHAT_MODEL, parent_span=root, inputs=llm_inputs)
    llm.end(outputs={"content": "", "tool_calls": []})
    tool = mlflow.start_span_no_context(
        name="cancel_order", span_type=SpanType.TOOL, parent_span=root, inputs=write_args
    )
    tool.end(outputs={"ok": True})
    root.end(outputs="Cancelled.")
    return root.trace_id


USER = {"role": "user", "content": "Please cancel order W123456, yes go ahead"}
POLICY = "Ask for the reason: 'no longer needed' or 'ordered by mistake'. Shipping speeds: see the tool."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "cancel_order",
            "parameters": {
                "properties": {"reason": {"type": "string"}, "refund_to": {"enum": ["store_credit_wallet"]}}
            },
        },
    }
]


def test_a_value_the_agents_instructions_or_tools_list_is_grounded(store):
    """The instructions and the tool definitions list the values the agent may choose from: a write using
    one of them made nothing up, whether the system prompt is a message, an Anthropic `system` parameter,
    or the value is an enum of the tool's schema. A value listed nowhere still is ungrounded."""
    args = {"order_id": "W123456", "reason": "no longer needed"}
    as_message = {"messages": [{"role": "system", "content": POLICY}, USER]}
    as_parameter = {"system": [{"type": "text", "text": POLICY}], "messages": [USER]}
    for inputs in (as_message, as_parameter):
        f = trace_features(store.trace(_told_then_wrote(store, inputs, args)))
        assert f["n_ungrounded_writes"] == 0, f["ungrounded_writes"]

    with_enum = {"messages": [USER], "tools": TOOLS}
    f = trace_features(
        store.trace(_told_then_wrote(store, with_enum, {"order_id": "W123456", "refund_to": "store_credit_wallet"}))
    )
    assert f["n_ungrounded_writes"] == 0

    made_up = {"order_id": "W123456", "reason": "customer changed their mind"}
    f = trace_features(store.trace(_told_then_wrote(store, {**as_message, "tools": TOOLS}, made_up)))
    assert f["n_ungrounded_writes"] == 1 and "customer changed their mind" in f["ungrounded_writes"][0]
