"""A candidate agent for benchmarks/candidates.py: it replays the production trace of each request
(the same tool calls, LLM calls, statuses and answer), optionally changed in one realistic way.

The recorded traces come from the JSON file in REPLAY_FILE (written by candidates.py); REPLAY_MODE:
  replay                 the production behaviour exactly
  reword:SEED            the same calls, the answer reworded at random (a nondeterministic model)
  drop_tools:SHARE:SEED  on SHARE of the requests (chosen at random), it stops calling its tools and
                         answers from the model alone (no tool spans, no tool calls or results in its
                         model calls' messages): an injected regression
  skip_confirmation:SHARE:SEED  on SHARE of the requests, where production asked before a state
                         change and the user said yes, the candidate goes straight to the change: the
                         model call that asked is gone and the user's go-ahead never comes
  repeat_tool:SHARE:SEED on SHARE of the requests, every tool call is made three times with the same
                         arguments (a retry loop that ignores the first success): an injected regression
  break_tool:SHARE:SEED  on SHARE of the requests, every call of a tool fails (a broken integration
                         after a refactor) and the agent carries on: an injected regression
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import mlflow
from mlflow.entities import SpanEvent

from trace2eval.traces.features import AFFIRMATION, is_write_tool

LLM_TYPES = ("CHAT_MODEL", "LLM")

_RECORDED: dict | None = None
OPENERS = ["", "Sure! ", "Certainly. ", "Thanks for waiting. ", "Of course. ", "Alright, "]
SWAPS = [("I have", "I've"), ("cannot", "can't"), ("Please", "Kindly"), ("booking", "reservation"), ("you", "you")]


def _recorded() -> dict:
    global _RECORDED
    if _RECORDED is None:
        with open(os.environ["REPLAY_FILE"], encoding="utf-8") as handle:
            _RECORDED = json.load(handle)
    return _RECORDED


def key(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def turn_key(inputs) -> str | None:
    """A conversation's request by what the user (and the system prompt) said, not the agent: a
    replayed turn carries the candidate's own earlier replies, so it is found by its user turns."""
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    if not isinstance(messages, list):
        return None
    said = [[m.get("role"), m.get("content")] for m in messages if isinstance(m, dict) and m.get("role") != "assistant"]
    return key(said)


def _find(inputs) -> tuple[str, dict]:
    recorded = _recorded()
    k = key(inputs)
    if k not in recorded:  # a turn of a replayed conversation (one trace per turn)
        k = recorded["__turns__"][turn_key(inputs)]
    return k, recorded[k]


def _coin(k: str, seed: str) -> float:
    return int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _reword(text: str, rng: random.Random) -> str:
    for a, b in SWAPS:
        if rng.random() < 0.5:
            text = text.replace(a, b)
    return rng.choice(OPENERS) + text


def _messages(span: dict) -> list:
    inputs = span.get("inputs")
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    return messages if isinstance(messages, list) else []


def _without_tools(span: dict) -> dict:
    """A model call of an agent that calls no tool: no tool results in, no tool calls out."""
    if span["type"] not in LLM_TYPES:
        return span
    kept = [
        {k: v for k, v in m.items() if k != "tool_calls"} if isinstance(m, dict) else m
        for m in _messages(span)
        if not (isinstance(m, dict) and m.get("role") == "tool")
    ]
    outputs = span["outputs"]
    if isinstance(outputs, dict) and outputs.get("tool_calls"):
        outputs = {**outputs, "tool_calls": []}
    inputs = {**span["inputs"], "messages": kept} if _messages(span) else span["inputs"]
    return {**span, "inputs": inputs, "outputs": outputs}


def _skip_confirmations(spans: list) -> list:
    """The spans of a run that never asks before a state change: wherever the latest user message
    before a write was a go-ahead, that message is gone, and so is the model call just before it
    when it only spoke (the question that asked for it)."""
    spans = [dict(s) for s in spans]
    parents = {s["parent"] for s in spans}
    gone: set = set()
    for j, span in enumerate(spans):
        if span["type"] != "TOOL" or not is_write_tool(span["name"]):
            continue
        asked = next((u for u in range(j - 1, -1, -1) if spans[u]["type"] in LLM_TYPES and _users(spans[u])), None)
        if asked is None or not AFFIRMATION.search(str(_users(spans[asked])[-1].get("content") or "")):
            continue
        kept = [m for m in _messages(spans[asked]) if not (isinstance(m, dict) and m.get("role") == "user")]
        spans[asked] = {**spans[asked], "inputs": {**spans[asked]["inputs"], "messages": kept}}
        question = next((q for q in range(asked - 1, -1, -1) if spans[q]["type"] in LLM_TYPES), None)
        if question is not None and spans[question]["id"] not in parents:
            out = spans[question]["outputs"]
            if not (isinstance(out, dict) and out.get("tool_calls")):
                gone.add(spans[question]["id"])
    return [s for s in spans if s["id"] not in gone]


def _users(span: dict) -> list:
    return [m for m in _messages(span) if isinstance(m, dict) and m.get("role") == "user"]


def _emit(span: dict, children: dict, drop_tools: bool, break_tools: bool = False, repeat: int = 1) -> None:
    for _ in range(repeat if span["type"] == "TOOL" else 1):
        _emit_one(span, children, drop_tools, break_tools, repeat)


def _emit_one(span: dict, children: dict, drop_tools: bool, break_tools: bool, repeat: int) -> None:
    if drop_tools and span["type"] == "TOOL":
        return
    if drop_tools:
        span = _without_tools(span)
    if break_tools and span["type"] == "TOOL":
        span = {**span, "status": "ERROR", "outputs": {"error": "tool call failed: 503 Service Unavailable"}}
    with mlflow.start_span(name=span["name"], span_type=span["type"]) as live:
        live.set_inputs(span["inputs"])
        for attr, value in span.get("attributes", {}).items():
            live.set_attribute(attr, value)
        for event in span.get("events", []):
            live.add_event(SpanEvent(name=event["name"], attributes=event.get("attributes") or {}))
        for child in children.get(span["id"], []):
            _emit(child, children, drop_tools, break_tools, repeat)
        live.set_outputs(span["outputs"])
        if span["status"] == "ERROR":
            live.set_status("ERROR")


INJECTIONS = ("drop_tools", "break_tool", "repeat_tool", "skip_confirmation")


def predict(**inputs):
    k, recorded = _find(inputs)
    mode, *args = os.environ.get("REPLAY_MODE", "replay").split(":")
    hit = mode in INJECTIONS and _coin(k, args[1]) < float(args[0])
    drop, broken = hit and mode == "drop_tools", hit and mode == "break_tool"
    spans = _skip_confirmations(recorded["spans"]) if hit and mode == "skip_confirmation" else recorded["spans"]
    children: dict = {}
    for span in spans:
        children.setdefault(span["parent"], []).append(span)
    for top in children.get(recorded["root"], []):
        _emit(top, children, drop, broken, 3 if hit and mode == "repeat_tool" else 1)
    outputs = recorded["outputs"]
    if mode == "reword" and isinstance(outputs, dict) and isinstance(outputs.get("response"), str):
        outputs = {**outputs, "response": _reword(outputs["response"], random.Random(f"{args[0]}:{k}"))}
    if drop and isinstance(outputs, dict):
        outputs = {**outputs, "response": "I have updated that for you."}
    if recorded.get("status") == "ERROR":
        mlflow.get_current_active_span().set_status("ERROR")  # the run hit its step limit, as recorded
    return outputs
