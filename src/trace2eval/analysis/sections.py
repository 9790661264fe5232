"""The population sections of `analysis.json`, described from counts.

Both engines count (the local analyzer over its digest rows, the Spark engine with DataFrame
aggregates over every trace) and hand the counts to these functions, which alone decide what the
sections say. The engines therefore differ only in how they count, and a parity test compares
counts; neither keeps a copy of the other's wording or thresholds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

EVIDENCE_IDS = 25  # trace ids kept per finding, error pattern or group
TRACE_NO_EXCEPTION = "trace ended with status ERROR (no exception recorded)"


class AgentCounts(NamedTuple):
    n: int  # traces
    tools: list[tuple[str, int]]  # calls per tool name, most called first (ties: first seen first)
    sub_agents: list[str]  # tools that run spans of their own, sorted
    nested_calls: int  # calls of those tools
    multi_turn: int  # traces with more than one user turn
    uses_tools: int  # traces with a tool call
    retrieval: int  # traces with a RETRIEVER span
    roots: list[tuple[str, int]]  # root span names, most common first
    shapes: list[tuple[str, int]]  # request shapes, most common first
    any_answer: bool


def describe_agent(c: AgentCounts) -> dict[str, Any]:
    n_calls = sum(calls for _, calls in c.tools)
    if c.sub_agents and c.nested_calls >= 0.5 * n_calls:
        kind = "multi-agent supervisor: routes requests to sub-agents exposed as tools"
    elif c.retrieval >= 0.5 * c.n:
        kind = "retrieval-augmented agent"
    elif c.uses_tools >= 0.3 * c.n and c.multi_turn >= 0.3 * c.n:
        kind = "tool-using conversational agent (multi-turn)"
    elif c.uses_tools >= 0.3 * c.n:
        kind = "tool-using agent"
    else:
        kind = "LLM application without tools"
    answers = "; outputs carry a final text answer" if c.any_answer else "; outputs are often empty"
    return {
        "type": kind,
        "root_spans": dict(c.roots[:5]),
        "input_shapes": dict(c.shapes[:5]),
        "tools": dict(c.tools[:30]),
        "sub_agents": list(c.sub_agents),
        "multi_turn_share": round(c.multi_turn / c.n, 3),
        "io": "inputs " + ", ".join(shape for shape, _ in c.shapes[:3]) + answers,
    }


def describe_trace_summary(
    n: int,
    by_status: dict[str, int],
    latency: dict[str, Any],
    tokens: dict[str, Any],
    total_tokens: int,
    tool_calls: dict[str, Any],
    user_turns: dict[str, Any],
    without_answer: int,
    first_ms: int | None,
    last_ms: int | None,
) -> dict[str, Any]:
    """`latency`, `tokens`, `tool_calls`, `user_turns`: distribution summaries (analysis.stats.summary)."""
    return {
        "total_analyzed": n,
        "by_status": dict(by_status),
        "error_count": by_status.get("ERROR", 0),
        "success_count": by_status.get("OK", 0),
        "latency_ms": latency,
        "tokens_per_trace": tokens,
        "total_tokens": total_tokens,
        "tool_calls_per_trace": tool_calls,
        "user_turns_per_trace": user_turns,
        "without_answer": without_answer,
        "first_timestamp_ms": first_ms,
        "last_timestamp_ms": last_ms,
    }


def describe_tool(
    name: str, calls: int, traces: int, failures: int, p50_ms: float, p95_ms: float, evidence: list[str]
) -> dict[str, Any]:
    return {
        "tool": name,
        "calls": calls,
        "traces": traces,
        "failures": failures,
        "failure_rate": round(failures / calls, 3),
        "p50_ms": round(p50_ms, 1),
        "p95_ms": round(p95_ms, 1),
        "evidence": evidence[:5],
    }


def describe_error_pattern(
    where: str, name: str, message: str, events: int, traces: int, evidence: list[str]
) -> dict[str, Any]:
    return {
        "where": where,
        "name": name,
        "message": message,
        "count": events,
        "traces": traces,
        "evidence": evidence[:EVIDENCE_IDS],
    }


# What a finding can need from the traces, and what the analysis says when no trace carries it.
CANNOT_READ = {
    "tools": "no trace shows a tool call (no TOOL spans, no tool calls in the messages): "
    "nothing can be said about tool use, failures or state changes; if the agent calls tools, trace them "
    '(the framework\'s MLflow autolog, or `@mlflow.trace(span_type="TOOL")`)',
    "tokens": "no trace carries token usage (a streamed reply without usage, or an integration that does not "
    "record it): nothing can be said about token cost",
    "answers": "no trace carries an answer in its outputs: nothing can be said about missing, cut-off or "
    "give-up answers; log the agent's reply as the root span's outputs",
}


def describe_coverage(carries: dict[str, bool], skipped: list[str]) -> dict[str, Any]:
    """Which kinds of evidence the traces carry; the findings not made for want of one."""
    missing = [k for k in CANNOT_READ if not carries.get(k, True)]
    return {
        "carries": {k: bool(carries.get(k, True)) for k in CANNOT_READ},
        "missing": missing,
        "notes": [CANNOT_READ[k] for k in missing],
        "findings_not_made": skipped,
    }
