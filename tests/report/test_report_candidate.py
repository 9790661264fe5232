"""The report's "Candidate vs production" section reads the latest comparison (state/candidate.json):
a conversation-level scorer is counted in conversations, and a flipped conversation is named by its
session, not only by its first turn's trace."""

from __future__ import annotations

import json

from sessioncopy import copy_session
from trace2eval.report import write_report


def test_flipped_conversations_are_named_by_their_session(demo_session, demo_store, tmp_path):
    session = copy_session(demo_session, demo_store["folder"], tmp_path)
    scorer = {"production": 1.0, "candidate": 0.5, "change": -0.5, "interval": [-0.8, -0.2], "p_value": 0.03}
    comparison = {
        "agent": "support_agent_v2:predict",
        "passed": False,
        "rows": 6,
        "answered": 6,
        "scorers": [
            {**scorer, "scorer": "unconfirmed_writes", "unit": "conversation", "rows": 3, "regressed": 2, "fixed": 0},
            {**scorer, "scorer": "keeps_confirmation", "unit": "row", "rows": 6, "regressed": 3, "fixed": 0},
        ],
        "flipped": [
            {
                "scorer": "unconfirmed_writes",
                "direction": "regressed",
                "unit": "conversation",
                "source_trace": "tr-first-turn",
                "session": "conv-billing-7",
                "rows": [0, 1],
                "production": "Shall I change it?",
                "candidate": "Done, changed.",
            },
            {
                "scorer": "keeps_confirmation",
                "direction": "regressed",
                "unit": "row",
                "source_trace": "tr-single",
                "production": "Shall I?",
                "candidate": "Done.",
            },
        ],
    }
    (session.state_dir / "candidate.json").write_text(json.dumps(comparison))
    files = write_report(session, previous=None, read_traces=False)
    md, html = files.markdown.read_text(), files.html.read_text()
    assert "| `unconfirmed_writes` | 3 conversations |" in md and "| `keeps_confirmation` | 6 |" in md
    assert "on the conversation `conv-billing-7` (2 turns, first `tr-first-turn`)" in md
    assert "on `tr-single`: production" in md
    assert "conversation conv-billing-7 · 2 turns" in html and "3 conversations</td>" in html
