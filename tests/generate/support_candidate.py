"""Candidate versions of the order-support agent that tracefactory.add_support_traces records:
real functions traced with MLflow, as a user's own agent code would be."""

from __future__ import annotations

import re

import mlflow
from mlflow.entities import SpanType


@mlflow.trace(span_type=SpanType.TOOL)
def get_order(id):
    return {"ok": True}


@mlflow.trace(span_type=SpanType.TOOL)
def update_address(id, fail):
    if fail:
        raise RuntimeError(f"address service refused order {id}")
    return {"ok": True}


def _order(query):
    return int(re.search(r"order (\d+)", query).group(1))


def _run(query, fail_when):
    i = _order(query)
    get_order(id=i)
    try:
        update_address(id=i, fail=fail_when(i))
    except RuntimeError:
        pass
    return {"response": f"Order {i} ships tomorrow."}


def unchanged(query):
    """The production behaviour: the address change fails for every third order."""
    return _run(query, lambda i: i % 3 == 0)


def regressed(query):
    """A new version whose address change fails on every order."""
    return _run(query, lambda i: True)


def flaky(query):
    """Production behaviour, but the new version crashes on orders 1 and 2."""
    if _order(query) in (1, 2):
        raise ConnectionError("upstream reset")
    return unchanged(query)


def hangs(query):
    """Production behaviour, but never answers order 4."""
    if _order(query) == 4:
        import time

        time.sleep(3600)
    return unchanged(query)


def chat(messages):
    """A chat version (a conversation in `messages`): production behaviour on the order the last user
    turn names; each request it receives is appended to $CANDIDATE_LOG as a JSON line."""
    import json
    import os

    if os.environ.get("CANDIDATE_LOG"):
        with open(os.environ["CANDIDATE_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(messages) + "\n")
    return _run(messages[-1]["content"], lambda i: i % 3 == 0)


def chat_or_query(query=None, messages=None):
    """The agent behind one entry point: single-turn rows send `query`, conversations `messages`."""
    return chat(messages) if messages is not None else unchanged(query)


# An address-change agent that asks before it writes (rows of tests/generate/test_regression_scorers.py):
# turn 1 names the change and asks, turn 2 (the user's go-ahead) makes it.
def _llm(messages, reply):
    with mlflow.start_span(name="llm", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": messages})
        span.set_outputs({"content": reply})


def _address_agent(messages, ask_first=True, use_tools=True):
    i = _order(messages[0]["content"])
    first_turn = sum(m["role"] == "user" for m in messages) == 1
    if first_turn and ask_first:
        if use_tools:
            get_order(id=i)
        reply = f"Order {i} would go to 5 Main St. Shall I change the address?"
        _llm(messages, reply)
        return {"response": reply}
    if not first_turn and not ask_first:
        _llm(messages, f"The address of order {i} is already changed.")
        return {"response": f"The address of order {i} is already changed."}
    _llm(messages, "")  # the model's reply is a tool call
    if use_tools:
        if not ask_first:
            get_order(id=i)
        update_address(id=i, fail=False)
    return {"response": f"I've changed the address of order {i}."}


def asks_first(messages):
    """The production behaviour: it asks, and changes the address once the user says yes."""
    return _address_agent(messages)


def skips_confirmation(messages):
    """A new version that changes the address on the first turn, without asking."""
    return _address_agent(messages, ask_first=False)


def answers_without_tools(messages):
    """A new version that no longer calls its tools: it answers from the model alone."""
    return _address_agent(messages, use_tools=False)


def asks_first_but_orders_0_and_1(messages):
    """The production behaviour of tests/generate/test_perturn_candidate.py: it asks first, except on
    orders 0 and 1, where it changes the address on the first turn."""
    return _address_agent(messages, ask_first=_order(messages[0]["content"]) > 1)
