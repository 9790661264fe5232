"""Evidence that also ends good conversations (the user's need left open, a restated request) is
reported at low severity, with its evidence, and passes; labels decide whether it counts."""

from __future__ import annotations

from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.labels import learn
from trace2eval.traces.checks import scorer_verdict
from trace2eval.traces.digest import digest_trace

OPEN = [
    "I want to change the shipping address of my order W1.",
    "It is the blue one. So what can you do for me?",
]
RESOLVED = ["I want to change the shipping address of my order W2.", "Yes please. Thanks, that's all!"]
REPEATED = [
    "I want to change the shipping address of my order W3.",
    "Yes.",
    "I want to change the shipping address of my order W3 please.",
]


def _analysis(store, conversations):
    ids = [
        store.add(turns[0], "Let me look.", user_turns=turns, tools=[{"name": "get_order", "args": {}}])
        for turns in conversations
    ]
    analyzer = Analyzer()
    digests = {tid: digest_trace(store.trace(tid)) for tid in ids}
    for d in digests.values():
        analyzer.add(d)
    return ids, digests, {f["id"]: f for f in analyzer.finish()["findings"]}


def test_an_open_need_and_a_restated_request_are_reported_with_evidence(store):
    ids, digests, found = _analysis(store, [OPEN, RESOLVED, REPEATED] * 4)
    left_open, repeats = found["need_left_open"], found["user_repeats"]
    for f in (left_open, repeats):
        assert f["params"]["report_only"] and f["severity"] == "low"
        assert "the labels decide whether it counts" in f["threshold_rationale"]
    assert set(left_open["evidence"]) <= set(ids[0::3]) and left_open["evidence"]
    assert set(repeats["evidence"]) <= set(ids[2::3]) and repeats["evidence"]
    # The scorer reports it and passes the trace, saying why.
    passed, rationale, meta = scorer_verdict("need_left_open", digests[ids[0]], left_open["params"])
    assert passed and meta == {"outlier": True} and "need open" in rationale
    assert scorer_verdict("need_left_open", digests[ids[1]], left_open["params"])[:2] == (
        True,
        "the user's last turn closes the conversation or asks nothing more",
    )


def test_labels_that_tie_an_open_need_to_failures_make_it_count(store):
    ids, _, found = _analysis(store, [OPEN, RESOLVED] * 6)
    labels = {tid: i % 2 == 1 for i, tid in enumerate(ids)}  # the open ones are the bad ones
    result = learn(list(found.values()), labels)
    assert result["learned"] and "need_left_open" in result["chosen"], result.get("reason")
    assert result["evidence"]["need_left_open"] == {"flagged_bad": 6, "bad": 6, "flagged_good": 0, "good": 6}
