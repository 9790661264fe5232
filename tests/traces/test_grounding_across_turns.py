"""Grounding a write across the turns of a conversation traced once per user turn.

A chat history usually keeps only what was said, so a turn's trace cannot see the ids an earlier
turn's lookup returned. The turn keeps its unjudged writes and a mark of what its own tools
returned; the conversation (`merge_turns`, as the analysis and the session-level scorers read it)
judges them: a value some earlier turn's tool returned is grounded, one nobody gave is not.
"""

from __future__ import annotations

from mlflow import MlflowClient

from trace2eval.traces.checks import run_check
from trace2eval.traces.digest import digest_trace
from trace2eval.traces.features import merge_turns, session_features, trace_features

LOOKUP = {
    "name": "get_order_details",
    "args": {"order_id": "W4817420"},
    # The item id is only in the tool result: nobody says it.
    "output": {"order_id": "W4817420", "items": [{"item_id": "6777246137", "name": "water bottle"}]},
}


def _conversation(store, session: str, item_id: str) -> list[str]:
    return store.add_conversation(
        session,
        [
            ("Hi, I want to return the water bottle from order W4817420.", "Shall I return it?", [LOOKUP]),
            (
                "Yes please, go ahead.",
                "Done: the return is filed.",
                [{"name": "return_items", "args": {"order_id": "W4817420", "item_ids": [item_id]}}],
            ),
        ],
    )


def test_a_write_using_an_id_an_earlier_turn_looked_up_is_grounded(store):
    ids = _conversation(store, "conv-grounded", "6777246137")
    alone = trace_features(store.trace(ids[1]))
    assert alone["n_ungrounded_writes"] == 0  # the turn alone cannot judge it: not counted
    turns = [trace_features(store.trace(t), turn=True) for t in ids]
    assert turns[1]["pending_writes"] and turns[0]["result_marks"]
    merged = merge_turns(turns)
    assert merged["n_ungrounded_writes"] == 0
    assert run_check("ungrounded_writes", merged, {"max": 0})[0]
    assert "result_marks" not in merged and "pending_writes" not in merged


def test_a_value_the_first_turns_instructions_list_grounds_a_later_write(store):
    """Instructions sent with the first turn only still list the values a later write may choose."""
    policy = "Returns need a reason: 'damaged on arrival' or 'wrong size'."
    turns = [
        ("Hi, I want to return the water bottle from order W4817420.", "Why are you returning it?", [LOOKUP]),
        (
            "It's damaged, please go ahead.",
            "Done: the return is filed.",
            [{"name": "return_items", "args": {"order_id": "W4817420", "reason": "damaged on arrival"}}],
        ),
    ]
    for session, system, ungrounded in (("conv-told", policy, 0), ("conv-not-told", None, 1)):
        ids = store.add_conversation(session, turns, system=system)
        merged = merge_turns([trace_features(store.trace(t), turn=True) for t in ids])
        assert merged["n_ungrounded_writes"] == ungrounded, merged["ungrounded_writes"]


def test_a_write_using_an_id_no_tool_returned_is_ungrounded_in_the_conversation(store):
    ids = _conversation(store, "conv-made-up", "9136502214")
    merged = merge_turns([trace_features(store.trace(t), turn=True) for t in ids])
    assert merged["n_ungrounded_writes"] == 1
    assert merged["ungrounded_writes"] == ["return_items(9136502214)"]
    assert not run_check("ungrounded_writes", merged, {"max": 0})[0]


def test_digests_of_session_turns_carry_marks_and_session_scorers_read_the_same(store):
    grounded = _conversation(store, "conv-a", "6777246137")
    made_up = _conversation(store, "conv-b", "9136502214")
    client = MlflowClient(store.uri)
    for ids, expected in ((grounded, 0), (made_up, 1)):
        traces = [client.get_trace(t) for t in ids]
        digests = [digest_trace(t) for t in traces]
        # Only hashes of what the tools returned are kept: no returned text in the digest.
        assert "6777246137" not in str(digests[0]["result_marks"])
        assert merge_turns(digests)["n_ungrounded_writes"] == expected
        assert session_features(list(reversed(traces)))["n_ungrounded_writes"] == expected


def test_a_trace_without_a_session_keeps_no_marks(store):
    tid = store.add_turn(None, [{"role": "user", "content": "Where is order W4817420?"}], "On its way.", tools=[LOOKUP])
    digest = digest_trace(store.trace(tid))
    assert "result_marks" not in digest and "pending_writes" not in digest


def test_marks_from_another_writer_are_ignored_not_fatal():
    turns = [
        {"result_marks": "not base64 at all!", "tools": [], "has_answer": True},
        {"pending_writes": [{"call": "cancel(x123)", "values": [["00ff00ff00ff00ff"]]}], "tools": []},
    ]
    assert merge_turns(turns)["n_ungrounded_writes"] == 1


def test_a_value_only_the_agent_said_in_an_earlier_turn_grounds_nothing(store):
    # The agent announces a refund card nobody gave and no tool returned, then uses it a turn later:
    # read alone the second turn could only take the agent's word; the conversation does not.
    ids = store.add_conversation(
        "conv-said",
        [
            ("Refund order W4817420 please.", "I will refund it to card_5512.", [LOOKUP]),
            (
                "Yes, go ahead.",
                "Refunded.",
                [{"name": "refund_order", "args": {"order_id": "W4817420", "payment": "card_5512"}}],
            ),
        ],
    )
    assert trace_features(store.trace(ids[1]))["n_ungrounded_writes"] == 0  # alone: the agent's word
    merged = merge_turns([trace_features(store.trace(t), turn=True) for t in ids])
    assert merged["ungrounded_writes"] == ["refund_order(card_5512)"]


def test_marks_stay_the_same_size_whatever_the_tools_returned(store):
    flights = [{"flight": f"HAT{i:04d}", "price": 100 + i, "date": f"2024-05-{i % 28 + 1:02d}"} for i in range(2000)]
    search = {"name": "search_flights", "args": {"origin": "JFK"}, "output": {"flights": flights}}
    ids = store.add_conversation(
        "conv-big",
        [
            ("Find me a flight from JFK please.", "HAT0042 works. Book it?", [search]),
            ("Yes, book it.", "Booked.", [{"name": "book_flight", "args": {"flight": "HAT0042"}}]),
        ],
    )
    turns = [trace_features(store.trace(t), turn=True) for t in ids]
    assert len(turns[0]["result_marks"]) == 1368  # 8,192 bits, base64: a 2,000-row search result included
    assert merge_turns(turns)["n_ungrounded_writes"] == 0


def test_a_conversation_cut_before_its_lookup_judges_no_write(store):
    # A sample (or a dataset) that kept only the second turn: the lookup that grounded the write is
    # missing, so the write is not judged rather than called ungrounded.
    ids = _conversation(store, "conv-cut", "9136502214")
    cut = [trace_features(store.trace(ids[1]), turn=True)]
    assert cut[0]["continues"] and cut[0]["pending_writes"]
    assert merge_turns(cut + cut)["n_ungrounded_writes"] == 0
