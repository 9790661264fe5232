"""Failure evidence read from the conversation itself: the user pushing back, the need left open, the
agent claiming an action no successful call performed. Real MLflow traces in a sqlite store."""

import pytest

from trace2eval.traces.checks import run_check
from trace2eval.traces.features import conversation_signals, trace_features


def conversation(store, steps, status="OK"):
    """A chat agent's trace, in order: ("user", text), ("assistant", text), ("tool", name, ok)."""
    from mlflow.entities import SpanStatusCode, SpanType

    mlflow = store.mlflow
    mlflow.set_tracking_uri(store.uri)
    t = 1_767_225_600_000_000_000
    first = next(s[1] for s in steps if s[0] == "user")
    root = mlflow.start_span_no_context(
        name="agent",
        span_type=SpanType.AGENT,
        inputs={"messages": [{"role": "user", "content": first}]},
        start_time_ns=t,
        experiment_id=store.experiment_id,
    )
    pending = []
    last = ""
    for step in steps:
        t += 1_000_000
        if step[0] == "user":
            pending.append({"role": "user", "content": step[1]})
        elif step[0] == "assistant":
            llm = mlflow.start_span_no_context(
                name="llm",
                span_type=SpanType.CHAT_MODEL,
                parent_span=root,
                inputs={"messages": pending},
                start_time_ns=t,
            )
            llm.end(outputs={"content": step[1], "tool_calls": []}, end_time_ns=t + 500_000)
            pending, last = [], step[1]
        else:
            tool = mlflow.start_span_no_context(
                name=step[1], span_type=SpanType.TOOL, parent_span=root, inputs={"order_id": "W123"}, start_time_ns=t
            )
            ok = step[2]
            tool.end(
                outputs={"status": "done"} if ok else "Error: order is not pending",
                status=SpanStatusCode.OK if ok else SpanStatusCode.ERROR,
                end_time_ns=t + 500_000,
            )
    root.end(outputs={"response": last}, status=SpanStatusCode(status), end_time_ns=t + 2_000_000)
    return trace_features(store.trace(root.trace_id))


def test_a_claim_after_a_failed_write_is_unbacked(store):
    f = conversation(
        store,
        [
            ("user", "Please cancel order W123."),
            ("assistant", "Shall I cancel order W123?"),
            ("user", "Yes please."),
            ("tool", "cancel_pending_order", False),
            ("assistant", "Your order W123 has been cancelled."),
        ],
    )
    assert f["n_unbacked_claims"] == 1 and "has been cancelled" in f["unbacked_claims"][0]
    passed, why = run_check("unbacked_claims", f, {"max": 0})
    assert not passed and "has been cancelled" in why


def test_a_claim_in_an_answer_no_model_span_carries_is_read(store):
    """An agent whose model calls are not traced (or that rewrites the reply) returns its last word only as
    the trace's answer: a claim there counts like one in a model's reply."""
    turns = ["Please cancel order W123.", "Yes please."]
    tools = [{"name": "cancel_pending_order", "args": {"order_id": "W123"}, "error": True}]
    claimed = trace_features(
        store.trace(store.add(turns[0], "Order W123 has been cancelled.", user_turns=turns, tools=tools))
    )
    assert claimed["n_unbacked_claims"] == 1 and claimed["unbacked_claims"] == ["Order W123 has been cancelled."]
    honest = trace_features(
        store.trace(store.add(turns[0], "I could not cancel order W123.", user_turns=turns, tools=tools))
    )
    assert honest["n_unbacked_claims"] == 0


def test_a_claim_after_a_successful_write_is_backed(store):
    f = conversation(
        store,
        [
            ("user", "Please cancel order W123."),
            ("tool", "cancel_pending_order", True),
            ("assistant", "Your order W123 has been cancelled. Anything else?"),
            ("user", "Thanks, that's all."),
        ],
    )
    assert f["n_unbacked_claims"] == 0 and not f["need_open"] and f["n_user_pushback"] == 0
    assert run_check("unbacked_claims", f, {"max": 0})[0] and run_check("user_pushback", f, {"max": 0})[0]


def test_questions_conditions_and_refusals_claim_nothing():
    timeline = [
        ("user", "cancel it"),
        ("assistant", "Would you like it to be cancelled? If it has been cancelled you will get a refund."),
        ("assistant", "It cannot be refunded, it has not been cancelled."),
    ]
    assert conversation_signals(["cancel it"], timeline, [])["n_unbacked_claims"] == 0


def test_a_user_who_pushes_back_and_leaves_with_a_question(store):
    f = conversation(
        store,
        [
            ("user", "I want a refund for my cancelled flight, the airline cancelled it."),
            ("assistant", "Your ticket is not refundable."),
            ("user", "That's not what I asked. I already told you the airline cancelled it."),
            ("assistant", "I am sorry, the ticket is not refundable."),
            ("user", "So what can you do for me?"),
        ],
    )
    assert f["n_user_pushback"] == 1 and f["need_open"]
    passed, why = run_check("user_pushback", f, {"max": 0})
    assert not passed and "push back" in why


@pytest.mark.parametrize(
    "turns, repeats",
    [
        (
            [
                "I want to change the shipping address of my order",
                "yes",
                "I want to change the shipping address please",
            ],
            1,
        ),
        (["I want to change the shipping address of my order", "my zip is 12345", "yes go ahead"], 0),
    ],
)
def test_a_restated_request_counts_as_a_repeat(turns, repeats):
    assert conversation_signals(turns, [("user", t) for t in turns], [])["n_user_repeats"] == repeats


def test_a_fix_that_has_not_worked_yet_is_troubleshooting_not_pushback():
    """'It still doesn't work' reports where a troubleshooting conversation stands; only left as the last
    word does it mean the need stayed open. 'You still haven't answered' corrects the agent."""
    fixing = ["My phone has no data.", "I toggled it, but it's still not working.", "It works now, thanks!"]
    signals = conversation_signals(fixing, [], [])
    assert signals["n_user_pushback"] == 0 and not signals["need_open"]
    left = conversation_signals(fixing[:2], [], [])
    assert left["n_user_pushback"] == 0 and left["need_open"]
    corrected = conversation_signals(["Where is my refund?", "You still haven't answered my question."], [], [])
    assert corrected["n_user_pushback"] == 1


def test_a_first_turn_complaint_is_the_request_not_pushback():
    # "I am frustrated, my order is late" opens a complaint the agent may resolve: not evidence against it.
    assert conversation_signals(["I am so frustrated, my order is late"], [], [])["n_user_pushback"] == 0


@pytest.mark.parametrize(
    "go_ahead, unconfirmed",
    [
        ("That works for me!", 0),
        ("That's fine, refund it to PayPal.", 0),
        ("Let's do it.", 0),
        ("Yes, go ahead.", 0),
        ("Refund it to PayPal.", 1),  # an instruction, not the go-ahead a confirmation asks for
    ],
)
def test_a_go_ahead_in_plain_words_confirms_the_write(store, go_ahead, unconfirmed):
    tid = store.add(
        "Refund my order",
        "Refunded.",
        user_turns=["I want a refund for order W4817420.", go_ahead],
        tools=[{"name": "refund_order", "args": {"order_id": "W4817420"}}],
    )
    assert trace_features(store.trace(tid))["n_unconfirmed_writes"] == unconfirmed
