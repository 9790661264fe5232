"""What the agent's instructions ask, read literally: whether it must get the user's go-ahead before it
changes anything. The go-ahead check is a failure only for an agent told to ask for one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trace2eval.analysis.findings import REGISTRY, _habit
from trace2eval.traces.features import asks_for_confirmation, session_features, trace_features

ASKS = [
    "Before taking any actions that update the database, you must list the action details and obtain "
    "explicit user confirmation (yes) to proceed.",
    "Ask the customer to approve the change first.",
    "Never change an account without the user's permission.",
    "Wait until you have the user's go-ahead.",
]
ASKS_NOTHING = [
    "Confirm the price.",
    "Always confirms the facts before offering compensation.",
    "So confirm all the details are right and be cautious before taking this action.",
    "| `grant_app_permission(app, permission)` | Give app access |",
    "If a user is traveling, enable roaming at no cost for the user.",
]


@pytest.mark.parametrize("text", ASKS)
def test_an_instruction_to_get_the_users_go_ahead_is_read(text):
    assert asks_for_confirmation(["You are a support agent.\n" + text])


@pytest.mark.parametrize("text", ASKS_NOTHING)
def test_confirming_facts_is_not_asking_for_a_go_ahead(text):
    assert not asks_for_confirmation([text])


def _acted(store, system: str | None, *, as_parameter: bool = False) -> dict:
    """A trace whose model call was told `system` and that changed an address at the user's request."""
    from mlflow.entities import SpanType

    user = {"role": "user", "content": "Change my address to 12 Elm St."}
    if system is None:
        inputs: dict = {"messages": [user], "tools": [{"type": "function", "function": {"name": "update_address"}}]}
    elif as_parameter:
        inputs = {"system": system, "messages": [user]}
    else:
        inputs = {"messages": [{"role": "system", "content": system}, user]}
    mlflow = store.mlflow
    root = mlflow.start_span_no_context(
        name="agent", span_type=SpanType.AGENT, inputs={"messages": [user]}, experiment_id=store.experiment_id
    )
    llm = mlflow.start_span_no_context(name="llm", span_type=SpanType.CHAT_MODEL, parent_span=root, inputs=inputs)
    llm.end(outputs={"content": "", "tool_calls": []})
    tool = mlflow.start_span_no_context(
        name="update_address", span_type=SpanType.TOOL, parent_span=root, inputs={"address": "12 Elm St."}
    )
    tool.end(outputs={"ok": True})
    root.end(outputs="Your address is updated.")
    return trace_features(store.trace(root.trace_id))


def test_a_trace_records_what_its_instructions_ask(store):
    assert _acted(store, "You are a support agent. " + ASKS[0])["policy_asks_confirmation"] is True
    assert _acted(store, ASKS[1], as_parameter=True)["policy_asks_confirmation"] is True
    told = _acted(store, "You are a support agent. Enable roaming at no cost. Confirm the price.")
    assert told["policy_asks_confirmation"] is False
    # Tool definitions alone are no policy: nothing is known of what the agent was told.
    assert _acted(store, None)["policy_asks_confirmation"] is None
    assert told["n_unconfirmed_writes"] == 1  # the write itself is still counted


def test_instructions_sent_with_the_first_turn_hold_for_the_conversation(store):
    store.add_conversation(
        "conv-policy",
        [
            ("Hi, I need help with my order.", "Sure, which one?", []),
            ("Order W1. Change the address to 12 Elm St.", "Done.", [{"name": "update_address", "args": {}}]),
        ],
        system="Before any change, obtain the user's explicit confirmation.",
    )
    from mlflow import MlflowClient

    client = MlflowClient(store.uri)
    turns = client.search_traces(locations=[store.experiment_id])
    merged = session_features(turns)
    assert merged["policy_asks_confirmation"] is True


TYPES = SimpleNamespace(names=["all"], terms=[["x"]], labels=[])


def _rows(policy: bool | None) -> list[dict]:
    return [
        {
            "trace_id": f"t{i}",
            "n_write_calls": 1,
            "n_unconfirmed_writes": int(i % 5 == 0),
            "n_tool_calls": 2,
            "request": "x",
            "query_type": "all",
            "tools": [],
            "policy_asks_confirmation": policy,
        }
        for i in range(20)
    ]


def _unconfirmed(rows: list[dict]) -> dict:
    spec = REGISTRY["unconfirmed_writes"]
    derived = _habit(rows, spec.check, spec.derive(rows, TYPES))
    return {
        "params": derived.params,
        "severity": derived.severity or spec.severity,
        "threshold_rationale": derived.rationale,
    }


def test_the_go_ahead_check_counts_only_for_an_agent_told_to_ask():
    told_to_ask = _unconfirmed(_rows(True))
    assert not told_to_ask["params"].get("report_only") and told_to_ask["severity"] == "high"
    assert "instructions ask for the user's go-ahead" in told_to_ask["threshold_rationale"]

    never_told = _unconfirmed(_rows(False))
    assert never_told["params"]["report_only"] and never_told["severity"] == "low"
    assert "never ask for the user's go-ahead" in never_told["threshold_rationale"]

    # No instructions in the traces: nothing is known, the check stands as before.
    unknown = _unconfirmed(_rows(None))
    assert not unknown["params"].get("report_only") and "instructions" not in unknown["threshold_rationale"]
