"""The declarative check language: what an LLM session may propose instead of scorer code.

A proposal is data — a condition over the features trace2eval already extracts (see
`traces/checks.py`, which evaluates it, and `traces/features.py`) — validated here against a JSON
schema and size limits, and rendered into `scorers.py` as a literal, like every deterministic
check. Nothing a model writes is ever executed: the only code that runs is trace2eval's own
interpreter. What the language cannot say (arbitrary computation, regular expressions, reading
span attributes by path) stays with the judges, which read the whole trace.
"""

from __future__ import annotations

from typing import Any

from trace2eval.traces.checks import RULE_FEATURES, RULE_OPS, RULE_TEXTS

MAX_DEPTH = 4
MAX_NODES = 16
MAX_PHRASES = 20

_phrase = {"type": "string", "minLength": 1, "maxLength": 80}
_number_or_flag = {"type": ["number", "boolean", "string"], "maxLength": 80}

CONDITION: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["feature", "op", "value"],
            "description": "compare one feature of the trace with a value",
            "properties": {
                "feature": {"enum": list(RULE_FEATURES)},
                "op": {"enum": list(RULE_OPS)},
                "value": _number_or_flag,
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["text"],
            "description": "a text field contains any of the phrases (case-insensitive substrings), or any of "
            "the words / word sequences (whole words)",
            "properties": {
                "text": {"enum": list(RULE_TEXTS)},
                "contains_any": {"type": "array", "items": _phrase, "minItems": 1, "maxItems": MAX_PHRASES},
                "words_any": {"type": "array", "items": _phrase, "minItems": 1, "maxItems": MAX_PHRASES},
            },
            "anyOf": [{"required": ["contains_any"]}, {"required": ["words_any"]}],
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["tool_calls", "op", "value"],
            "description": "count the tool calls that match the filter and compare the count",
            "properties": {
                "tool_calls": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": _phrase,
                        "name_contains": _phrase,
                        "ok": {"type": "boolean"},
                        "nested": {"type": "boolean"},
                        "args_contains": _phrase,
                    },
                },
                "op": {"enum": list(RULE_OPS)},
                "value": {"type": "integer", "minimum": 0, "maximum": 1000},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["all"],
            "properties": {
                "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1, "maxItems": 8}
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["any"],
            "properties": {
                "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1, "maxItems": 8}
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["not"],
            "properties": {"not": {"$ref": "#/$defs/condition"}},
        },
    ]
}


def limits(cond: Any, depth: int = 1) -> list[str]:
    """What the schema cannot say: nesting depth and the total number of conditions."""
    problems: list[str] = []
    count = 0

    def walk(node: Any, level: int) -> None:
        nonlocal count
        count += 1
        if level > MAX_DEPTH and not problems:
            problems.append(f"conditions nest at most {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            for key in ("all", "any"):
                for part in node.get(key) or []:
                    walk(part, level + 1)
            if "not" in node:
                walk(node["not"], level + 1)

    walk(cond, depth)
    if count > MAX_NODES:
        problems.append(f"at most {MAX_NODES} conditions in one check (got {count})")
    return problems


def describe(cond: Any) -> str:
    """The condition in words, for the scorer's docstring and the report."""
    if not isinstance(cond, dict):
        return "?"
    if "all" in cond:
        return "(" + " and ".join(describe(c) for c in cond["all"]) + ")"
    if "any" in cond:
        return "(" + " or ".join(describe(c) for c in cond["any"]) + ")"
    if "not" in cond:
        return f"not {describe(cond['not'])}"
    if "feature" in cond:
        return f"{cond['feature']} {cond['op']} {cond['value']!r}"
    if "text" in cond:
        phrases = cond.get("contains_any") or cond.get("words_any") or []
        how = "contains any of" if "contains_any" in cond else "has any of the words"
        return f"{cond['text']} {how} {phrases!r}"
    if "tool_calls" in cond:
        flt = ", ".join(f"{k}={v!r}" for k, v in cond["tool_calls"].items()) or "any"
        return f"count of tool calls ({flt}) {cond['op']} {cond['value']}"
    return "?"
