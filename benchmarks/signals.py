"""Candidate failure signals that are not checks: on how many failed and good conversations each fires.

A signal becomes a check only when it fires on failed conversations clearly more often than on good ones,
per agent, not only pooled. This script keeps the measurements of the readings that were tried and not
made checks, so the decision can be rerun on other conversations. It reads the labelled conversations
the way `load_traces.py` does (its `conversations()`), with no MLflow store: the signals read only the
messages, the tool calls and whether a tool failed.

Usage:
  python benchmarks/signals.py --traces-dir ../shared/traces/dev --loader ../shared/traces/load_traces.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any, Callable

from trace2eval.traces.features import is_handoff_tool, is_write_tool

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"

# The agent saying something does not exist or cannot be had.
NOT_FOUND = re.compile(
    r"\b(?:(?:could not|couldn(?:'|’)?t|can(?:'|’)?t|cannot|unable to|wasn(?:'|’)?t able to|was not able to)"
    r" (?:find|locate|retrieve|see)|(?:not|no(?:thing)?) (?:be )?found|no record|there (?:is|are) no"
    r"|does(?:n(?:'|’)?t| not) (?:exist|appear)|not (?:exist|available|eligible)|isn(?:'|’)?t (?:available|eligible)"
    r"|no longer available|out of stock|unavailable)\b",
    re.IGNORECASE,
)
APOLOGY_FOR_ERROR = re.compile(
    r"\b(?:apolog\w*|sorry)\b[^.!?]{0,40}\b(?:confusion|mistake|oversight|error|misunderstanding|incorrect)",
    re.IGNORECASE,
)
SELF_CORRECTION = re.compile(
    r"\b(?:my mistake|i made (?:a|an) (?:mistake|error)|i misspoke|let me correct|correction:|i was wrong"
    r"|i mistakenly|i incorrectly|i misunderstood)\b",
    re.IGNORECASE,
)

# A user turn that opens by declining or holding the agent back.
DECLINES = re.compile(r"^\W*(?:no\b|nope\b|not yet\b|wait\b|hold on\b|don(?:'|’)?t\b|do not\b|stop\b)", re.IGNORECASE)

Messages = list[dict[str, Any]]


def not_found_after_success(msgs: Messages) -> bool:
    """The agent contradicting its tools, read literally: it says something was not found or is not
    available right after every tool call since the user's last turn succeeded."""
    outputs: list[dict[str, Any]] = []
    for m in msgs:
        if m["role"] == "user":
            outputs = []
        elif m["role"] == "tool":
            outputs.append(m)
        elif m["role"] == "assistant" and m.get("content"):
            if outputs and not any(o["error"] for o in outputs):
                if any(NOT_FOUND.search(s) for s in re.split(r"(?<=[.!?\n])\s+", m["content"])):
                    return True
            if not m.get("tool_calls"):
                outputs = []
    return False


def write_after_user_declined(msgs: Messages) -> bool:
    """The agent acting against the user's word: a state-changing call (the product's reading of a write
    tool) whose last user turn before it opens by declining ("No, ...", "Wait", "Don't ...")."""
    last_user = ""
    for m in msgs:
        if m["role"] == "user":
            last_user = m.get("content") or ""
        elif m["role"] == "assistant":
            if any(is_write_tool(t["name"]) for t in m.get("tool_calls") or []) and DECLINES.search(last_user):
                return True
    return False


MONEY = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MAX_PAIRS_OF = 400  # known numbers beyond this are not paired (a catalogue dump): the amount counts as sourced


def unsourced_amount(msgs: Messages) -> bool:
    """The agent stating a sum of money nobody gave: an amount ("$54.20") in its words that no earlier tool
    result, user turn, instruction or tool argument holds, nor the sum or difference of two of them."""
    known: set[float] = set()
    for m in msgs:
        content = m.get("content")
        if m["role"] in ("system", "user", "tool") and content:
            text = content if isinstance(content, str) else json.dumps(content)
            known |= {round(float(x), 2) for x in NUMBER.findall(text.replace(",", ""))}
        for t in m.get("tool_calls") or []:
            known |= {round(float(x), 2) for x in NUMBER.findall(json.dumps(t["arguments"]))}
        if m["role"] != "assistant" or not isinstance(content, str):
            continue
        for amount in MONEY.findall(content):
            value = round(float(amount.replace(",", "")), 2)
            pool = [k for k in known if k > 0]
            if value in known or len(pool) > MAX_PAIRS_OF:
                continue
            if not any(abs(a + b - value) < 0.011 or abs(abs(a - b) - value) < 0.011 for a, b in combinations(pool, 2)):
                return True
    return False


def _agent_messages(msgs: Messages) -> list[str]:
    return [
        m["content"] for m in msgs if m["role"] == "assistant" and isinstance(m.get("content"), str) and m["content"]
    ]


def _agent_says(pattern: re.Pattern[str]) -> Callable[[Messages], bool]:
    return lambda msgs: any(pattern.search(text) for text in _agent_messages(msgs))


def ends_with_a_question(msgs: Messages) -> bool:
    said = _agent_messages(msgs)
    return bool(said) and "?" in said[-1][-200:]


SIGNALS: dict[str, Callable[[Messages], bool]] = {
    "not_found_after_successful_tools": not_found_after_success,
    # the product's own reading of a hand-off tool (traces/features.py)
    "hand_off_call": lambda msgs: any(is_handoff_tool(t["name"]) for m in msgs for t in m.get("tool_calls") or []),
    "apology_for_an_error": _agent_says(APOLOGY_FOR_ERROR),
    "self_correction": _agent_says(SELF_CORRECTION),
    "agent_ends_with_a_question": ends_with_a_question,
    "write_after_user_declined": write_after_user_declined,
    "unsourced_amount": unsourced_amount,
}


def _load(loader: Path) -> Any:
    spec = importlib.util.spec_from_file_location("load_traces", loader)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {loader}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES / "dev")
    p.add_argument("--loader", type=Path, default=DEFAULT_TRACES / "load_traces.py")
    args = p.parse_args()
    files = sorted(args.traces_dir.glob("*.json"))
    if not files or not args.loader.exists():
        print(f"no labelled conversations in {args.traces_dir} or no loader at {args.loader}", file=sys.stderr)
        return 2
    loader = _load(args.loader)
    counts: dict[str, Counter[tuple[str, bool]]] = {}
    for f in files:
        agent = counts.setdefault(f.stem, Counter())
        for _key, _domain, msgs, success, *_ in loader.conversations(f, None):
            agent[("n", success)] += 1
            for name, fires in SIGNALS.items():
                agent[(name, success)] += fires(msgs)
    pooled: Counter[tuple[str, bool]] = sum(counts.values(), Counter())
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {len(files)} agents")
    for agent, c in [*counts.items(), ("POOLED", pooled)]:
        print(f"\n{agent}: {c[('n', False)]} failed, {c[('n', True)]} good conversations")
        for name in SIGNALS:
            fail, good = c[(name, False)], c[(name, True)]
            print(
                f"  {name:34} fires on failed {fail:3}/{c[('n', False)]:<3} ({fail / max(1, c[('n', False)]):4.0%})"
                f"   on good {good:3}/{c[('n', True)]:<3} ({good / max(1, c[('n', True)]):4.0%})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
