"""The layout adapters on the payload shapes frameworks write (fast; the real frameworks run in
test_layouts.py)."""

from __future__ import annotations

import json

import pytest

from trace2eval.traces.features import answer_text, request_shape, request_text
from trace2eval.traces.layouts import carried_messages, read_messages, result_failed, tool_identity


@pytest.mark.parametrize(
    "name, inputs, want",
    [
        (
            "execute_tool",
            {"tool_name": "cancel_order", "args": {"order_id": "A1"}},
            ("cancel_order", {"order_id": "A1"}),
        ),
        ("call_tool", {"name": "refund", "arguments": '{"amount": 12}'}, ("refund", {"amount": 12})),
        ("Tool.cancel_order", {"order_id": "A1"}, ("cancel_order", {"order_id": "A1"})),
        ("functions.get_order", {"id": 3}, ("get_order", {"id": 3})),
        # a tool of its own whose argument is called "name": not a dispatcher
        ("find_customer", {"name": "Ada"}, ("find_customer", {"name": "Ada"})),
        ("cancel_order", {"order_id": "A1"}, ("cancel_order", {"order_id": "A1"})),
        ("dispatch", {"tool_name": "get_order", "args": {"id": 1}}, ("get_order", {"id": 1})),
        ("get_tool_docs", {"tool_name": "refund"}, ("get_tool_docs", {"tool_name": "refund"})),
    ],
)
def test_tool_identity(name, inputs, want):
    assert tool_identity(name, inputs) == want


@pytest.mark.parametrize(
    "output, failed",
    [
        ({"content": '{"error": "address service unavailable"}', "status": "success", "type": "tool"}, True),
        ({"content": '{"order_id": "A1", "status": "cancelled"}', "status": "success", "type": "tool"}, False),
        ({"content": [{"type": "text", "text": "Error: not found"}], "isError": True}, True),  # MCP
        ({"type": "tool_result", "content": "no such order", "is_error": True}, True),  # Anthropic
        ('{"error": "timeout"}', True),
        ("Error executing tool: boom", True),
        ("Execution error in check_inventory: RuntimeError", True),
        ({"status": "failed"}, True),
        ({"result": {"error": "denied"}}, True),
        ("The order shipped; no errors so far.", False),
        ({"orders": [1, 2]}, False),
    ],
)
def test_result_failed(output, failed):
    assert result_failed(output) is failed


def test_requests_unwrapped_from_a_responses_envelope():
    inputs = {
        "request": {
            "tool_choice": None,
            "input": [
                {"role": "user", "content": "Where is A1?", "type": "message", "status": None},
                {"role": "assistant", "content": "Shipped. Cancel it?", "type": "message"},
                {"role": "user", "content": [{"type": "input_text", "text": "Yes please."}], "type": "message"},
            ],
        }
    }
    assert request_text(inputs) == "Yes please."
    assert request_shape(inputs) == "input"


def test_a_tool_result_is_not_the_request():
    inputs = {
        "messages": [
            {"role": "user", "content": "Cancel A1"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "cancel_order", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ]
    }
    assert request_text(inputs) == "Cancel A1"
    messages = read_messages(inputs)
    assert messages[1].calls[0]["name"] == "cancel_order" and messages[2].results[0]["content"] == "ok"
    assert [m.is_user_turn for m in messages] == [True, False, False]


@pytest.mark.parametrize(
    "outputs, want",
    [
        # LangGraph state: the last AI message, not the state
        (
            {
                "messages": [
                    {"type": "human", "content": "hi"},
                    {"type": "ai", "content": "", "tool_calls": [{"name": "x", "args": {}, "id": "1"}]},
                    {"type": "tool", "content": "{}", "tool_call_id": "1", "status": "success"},
                    {"type": "ai", "content": "All done."},
                ]
            },
            "All done.",
        ),
        # Responses output items
        (
            {
                "object": "response",
                "output": [
                    {"type": "function_call", "call_id": "c1", "name": "x", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "{}"},
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
                ],
            },
            "Done.",
        ),
        # An Anthropic reply asking for a tool answers nothing yet
        (
            {
                "role": "assistant",
                "stop_reason": "tool_use",
                "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "t", "name": "x"}],
            },
            "",
        ),
        (
            {"role": "assistant", "stop_reason": "end_turn", "content": [{"type": "text", "text": "Hi there."}]},
            "Hi there.",
        ),
        ({"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}}]}, ""),
        ({"response": "plain"}, "plain"),
    ],
)
def test_answers(outputs, want):
    assert answer_text(outputs) == want
    assert "tool_use" not in answer_text(json.loads(json.dumps(outputs)))


def _chunk(content, id="run-1", **extra):
    return {"type": "AIMessageChunk", "content": content, "id": id, **extra}


_CALL_CHUNK = _chunk("", id="run-0", tool_call_chunks=[{"name": "get_order", "args": "", "index": 0}])
_TOOL_MESSAGE = {"type": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1", "status": "success"}


@pytest.mark.parametrize(
    "pieces, want",
    [
        # text fragments a chat endpoint yielded: joined as shown
        (["Order A1", "001 shipped", " yesterday."], "Order A1001 shipped yesterday."),
        # message chunks: the tool-call chunk and tool result before the answer are not the answer
        ([_CALL_CHUNK, _TOOL_MESSAGE, _chunk("Order A1"), _chunk("001 shipped.")], "Order A1001 shipped."),
        # LangGraph stream_mode="messages": (chunk, metadata) pairs
        ([[_chunk("Hel"), {"langgraph_node": "model"}], [_chunk("lo."), {"langgraph_node": "model"}]], "Hello."),
        # several modes at once: the whole message after its chunks replaces them, not doubles them
        (
            [
                ["messages", [_chunk("Hel"), {}]],
                ["messages", [_chunk("lo."), {}]],
                ["updates", {"model": {"messages": [{"type": "ai", "content": "Hello.", "id": "run-1"}]}}],
            ],
            "Hello.",
        ),
        # LangGraph updates: the messages the nodes returned
        (
            [
                {"model": {"messages": [{"type": "ai", "content": "", "id": "a", "tool_calls": [{"id": "c1"}]}]}},
                {"tools": {"messages": [_TOOL_MESSAGE]}},
                {"model": {"messages": [{"type": "ai", "content": "Shipped.", "id": "b"}]}},
            ],
            "Shipped.",
        ),
        # LangGraph values: whole states, the last one answers
        (
            [
                {"messages": [{"type": "human", "content": "Where?"}]},
                {"messages": [{"type": "human", "content": "Where?"}, {"type": "ai", "content": "Here."}]},
            ],
            "Here.",
        ),
        # chunks whose content is blocks (LangChain's Anthropic model): the spaces between fragments kept
        (
            [_chunk([{"type": "text", "text": "Hello ", "index": 0}]), _chunk([{"type": "text", "text": "there."}])],
            "Hello there.",
        ),
        # ChatAgent chunks
        (
            [
                {"delta": {"role": "assistant", "content": "Hi ", "id": "m"}},
                {"delta": {"content": "there.", "role": "assistant", "id": "m"}},
            ],
            "Hi there.",
        ),
        # OpenAI chat chunks, the usage chunk last
        (
            [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi "}}]},
                {"choices": [{"index": 0, "delta": {"content": "there."}}]},
                {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
            ],
            "Hi there.",
        ),
    ],
)
def test_streamed_outputs_answer_with_the_pieces_merged(pieces, want):
    assert answer_text(pieces) == want
    assert answer_text(json.loads(json.dumps(pieces))) == want


def test_an_output_recorded_as_a_repr_is_no_answer():
    assert answer_text("<anthropic.Stream object at 0x7f669d880850>") == ""
    assert answer_text("<the answer is in here>") == "<the answer is in here>"


def test_a_list_that_is_no_stream_is_read_as_before():
    assert answer_text([{"response": "first"}, {"response": "last"}]) == "last"


def test_the_same_go_ahead_twice_is_two_turns(store):
    from trace2eval.traces.features import trace_features

    tid = store.add(
        {"query": "Cancel A1 and refund it"},
        "Done.",
        user_turns=["Cancel A1 and refund it", "Yes please.", "Yes please."],
        tools=[{"name": "cancel_order", "args": {"order_id": "A1"}, "output": "ok"}],
    )
    f = trace_features(store.trace(tid))
    assert f["n_user_turns"] == 3 and f["user_turns"].count("Yes please.") == 2


def test_a_dspy_history_reads_as_the_conversation_so_far():
    inputs = {
        "question": "Yes please.",
        "customer": "C-17",
        "history": {
            "messages": [
                {"question": "Where is order A1001?", "customer": "C-17", "answer": "Shipped. Cancel it?"},
                {"question": "Hmm.", "reasoning": "unsure", "answer": "Shall I cancel A1001?"},
            ]
        },
    }
    said = [(m.role, m.text) for m in carried_messages(inputs)]
    assert said == [
        ("user", "Where is order A1001?\nC-17"),
        ("assistant", "Shipped. Cancel it?"),
        ("user", "Hmm."),
        ("assistant", "unsure\nShall I cancel A1001?"),
        ("user", "Yes please.\nC-17"),
    ]
    # Any other request reads as its message list, as before.
    assert [m.text for m in carried_messages({"messages": [{"role": "user", "content": "hi"}]})] == ["hi"]
    assert carried_messages({"question": "hi", "history": {"messages": []}}) == []
