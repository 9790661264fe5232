"""JSON schemas of everything the model may submit, and the validator that enforces them.

The same schema is sent to the model as the tool's `input_schema` and checked on what comes back,
so the model is told exactly the shape it is held to. Semantic checks (does that trace exist,
does that name collide) come after, in the tool handlers.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from trace2eval.generate import rules

SNAKE = "^[a-z][a-z0-9_]{2,48}$"
TRACE_ID = {"type": "string", "minLength": 3, "maxLength": 100, "pattern": "^[A-Za-z0-9_:\\-]+$"}
SHORT = {"type": "string", "minLength": 1, "maxLength": 300}


def _text(max_length: int, min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


EXPECTATIONS = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "description": "MLflow expectations for the row (ground truth a judge or scorer compares with).",
    "properties": {
        "expected_facts": {
            "type": "array",
            "items": _text(300),
            "minItems": 1,
            "maxItems": 10,
            "description": "Facts a correct response states.",
        },
        "expected_response": _text(3000),
        "guidelines": {
            "type": "array",
            "items": _text(400),
            "minItems": 1,
            "maxItems": 8,
            "description": "Row-specific rules the response must follow.",
        },
    },
}

AGENT_PROFILE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["agent_name", "description", "query_types", "evaluation_dimensions"],
    "properties": {
        "agent_name": _text(80, 3),
        "description": {**_text(1500, 20), "description": "What the agent does, for whom, with which tools."},
        "domains": {"type": "array", "items": _text(60), "maxItems": 10},
        "query_types": {
            "type": "array",
            "maxItems": 20,
            "description": "A readable name and description for each query type the analysis clustered.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["cluster", "label", "description"],
                "properties": {
                    "cluster": {**_text(120), "description": "query type name from the analysis"},
                    "label": {"type": "string", "pattern": SNAKE},
                    "description": _text(400),
                },
            },
        },
        "evaluation_dimensions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 15,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "why", "scorer_type"],
                "properties": {
                    "name": {"type": "string", "pattern": SNAKE},
                    "why": _text(600),
                    "scorer_type": {"enum": ["code", "rule", "guidelines", "make_judge", "builtin_judge"]},
                    "finding": {**_text(80), "description": "finding id from the analysis"},
                    "evidence": {"type": "array", "items": TRACE_ID, "maxItems": 5},
                },
            },
        },
        "plan_notes": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"dataset": _text(800), "scorers": _text(800)},
        },
    },
}

DATASET_ROWS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rows"],
    "properties": {
        "rows": {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["source_trace", "reason"],
                "properties": {
                    "source_trace": {**TRACE_ID, "description": "a trace id you saw through a tool"},
                    "reason": _text(400),
                    "case_type": {"enum": ["edge_case", "regression", "happy_path", "adversarial"]},
                    "expectations": EXPECTATIONS,
                },
            },
        }
    },
}

EDGE_CASES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cases"],
    "properties": {
        "cases": {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["inputs", "reason", "expectations"],
                "properties": {
                    "inputs": {
                        "type": "object",
                        "minProperties": 1,
                        "description": "request in exactly the shape of the agent's real inputs",
                    },
                    "reason": _text(400),
                    "variant_of": TRACE_ID,
                    "expectations": EXPECTATIONS,
                },
            },
        }
    },
}

GUIDELINES_JUDGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "guidelines", "doc"],
    "properties": {
        "name": {"type": "string", "pattern": SNAKE},
        "guidelines": {"type": "array", "items": _text(600, 10), "minItems": 1, "maxItems": 8},
        "doc": _text(600, 10),
        "finding": _text(80),
        "replaces": {
            "type": "string",
            "pattern": SNAKE,
            "description": "name of an existing guidelines judge this one rewrites",
        },
    },
}

CUSTOM_JUDGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "instructions", "doc"],
    "properties": {
        "name": {"type": "string", "pattern": SNAKE},
        "instructions": {
            **_text(4000, 40),
            "description": "make_judge instructions using {{ inputs }}, {{ outputs }} and/or {{ trace }}; "
            "the judge answers true (pass) or false (fail)",
        },
        "doc": _text(600, 10),
        "finding": _text(80),
    },
}

CUSTOM_CHECK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "doc", "fail_when", "message"],
    "$defs": {"condition": rules.CONDITION},
    "properties": {
        "name": {"type": "string", "pattern": SNAKE},
        "doc": _text(600, 10),
        "fail_when": {
            "$ref": "#/$defs/condition",
            "description": "the condition over the trace's features under which the check FAILS",
        },
        "message": {**_text(200, 5), "description": "what a failure means, shown as the rationale"},
        "finding": _text(80),
        "replaces": {
            "type": "string",
            "pattern": SNAKE,
            "description": "fix session: name of a dropped or failing LLM check this one repairs",
        },
    },
}


def errors(schema: dict[str, Any], payload: Any, limit: int = 6) -> list[str]:
    """Schema violations of `payload`, each with the JSON path where it happened."""
    found = []
    for err in sorted(Draft202012Validator(schema).iter_errors(payload), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        found.append(f"{where}: {err.message[:200]}")
        if len(found) >= limit:
            break
    return found
