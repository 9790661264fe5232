"""A candidate agent for benchmarks/candidates.py: it replays the production trace of each request
(the same tool calls, LLM calls, statuses and answer), optionally changed in one realistic way.

The recorded traces come from the JSON file in REPLAY_FILE (written by candidates.py); REPLAY_MODE:
  replay                 the production behaviour exactly
  reword:SEED            the same calls, the answer reworded at random (a nondeterministic model)
  drop_tools:SHARE:SEED  on SHARE of the requests (chosen at random), it stops calling its tools and
                         answers from the model alone: an injected regression
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


def _coin(k: str, seed: str) -> float:
    return int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _reword(text: str, rng: random.Random) -> str:
    for a, b in SWAPS:
        if rng.random() < 0.5:
            text = text.replace(a, b)
    return rng.choice(OPENERS) + text


def _emit(span: dict, children: dict, drop_tools: bool, break_tools: bool = False, repeat: int = 1) -> None:
    for _ in range(repeat if span["type"] == "TOOL" else 1):
        _emit_one(span, children, drop_tools, break_tools, repeat)


def _emit_one(span: dict, children: dict, drop_tools: bool, break_tools: bool, repeat: int) -> None:
    if drop_tools and span["type"] == "TOOL":
        return
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


def predict(**inputs):
    k = key(inputs)
    recorded = _recorded()[k]
    mode, *args = os.environ.get("REPLAY_MODE", "replay").split(":")
    hit = mode in ("drop_tools", "break_tool", "repeat_tool") and _coin(k, args[1]) < float(args[0])
    drop, broken = hit and mode == "drop_tools", hit and mode == "break_tool"
    children: dict = {}
    for span in recorded["spans"]:
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
