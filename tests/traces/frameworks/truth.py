"""What the scripted conversation did, compared with the features read from a layout's traces."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import script

# DSPy's ReAct answers one question per trace, without the conversation: one user turn each.
ONE_TURN_PER_TRACE = {"dspy"}


def grade(layout: str, features: list[dict[str, Any]], n_model_calls: int, tokens: int) -> dict[str, dict[str, Any]]:
    """Each feature's verdict for one layout: {feature: {"ok", "got", "want"}}.

    `features` are the traces' features in time order; `n_model_calls` and `tokens` are what the
    model server answered and reported while the layout ran.
    """
    users = [t.user for t in script.TURNS]
    calls = [s.tool for t in script.TURNS for s in t.steps]
    want_turns = 1 if layout in ONE_TURN_PER_TRACE else len(users)
    got: dict[str, Any] = {
        "tool_calls": sorted(Counter(t["name"] for f in features for t in f["tools"]).items()),
        "writes": sum(f["n_write_calls"] for f in features),
        "tool_errors": sorted(t["name"] for f in features for t in f["tools"] if not t["ok"]),
        "unconfirmed_writes": sum(f["n_unconfirmed_writes"] for f in features),
        "ungrounded_writes": sum(f["n_ungrounded_writes"] for f in features),
        "user_turns": max((f["n_user_turns"] for f in features), default=0),
        "requests": sorted({f["request"] for f in features}),
        "answers": [f["answer"] for f in features if f["has_answer"]],
        "llm_calls": sum(f["llm_calls"] for f in features),
        "tokens": sum(f["tokens_in"] + f["tokens_out"] for f in features),
    }
    want: dict[str, Any] = {
        "tool_calls": sorted(Counter(calls).items()),
        "writes": sum(c in script.WRITES for c in calls),
        "tool_errors": sorted(c for c in calls if c in script.FAILING),
        "unconfirmed_writes": 1,  # only the address change went ahead without a "yes"
        # DSPy's traces lack the conversation that named the order, so its writes are ungrounded there
        "ungrounded_writes": 0,
        "user_turns": want_turns,
        "requests": sorted(set(users)),
        "answers": [t.answer for t in script.TURNS],
        "llm_calls": n_model_calls,
        "tokens": tokens,
    }
    return {k: {"ok": got[k] == want[k], "got": got[k], "want": want[k]} for k in want}
