"""Reading the experiment's traces: search (filtered, paged) and one trace at a chosen detail.

Only the session's own population is visible (its experiment, its --filter/--since), every string
is redacted, and nothing from a trace's tags or assessments is ever shown: labels such as a
benchmark's ground truth or earlier evaluation results must not steer what the model generates.
"""

from __future__ import annotations

import re
from typing import Any

from trace2eval.llm.tools.base import Tool
from trace2eval.llm.tools.context import ToolContext, ToolError
from trace2eval.traces.features import (
    root_span,
    span_duration_ms,
    span_status,
    span_type,
    to_text,
    trace_features,
    trace_spans,
)
from trace2eval.traces.redact import redact, redact_text
from trace2eval.traces.source import TraceQuery

MAX_PAGE = 20
CONVERSATION_CHARS = 14_000
SYSTEM_PROMPT_CHARS = 5_000
ITEM_CHARS = 600
MAX_SPANS_SHOWN = 60
SAFE_TOOL_NAME = re.compile(r"^[\w.\-: ]{1,100}$")


def _cut(value: Any, limit: int) -> str:
    """A preview redacted before it is cut (the final `redact` could not see a key cut in half)."""
    return to_text(value, limit, redact_text)


def _message_text(message: Any) -> str:
    """Text of a chat message whose content is a string or a list of content blocks."""
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content).strip()
    return "" if content is None else str(content)


def _summary(ctx: ToolContext, trace: Any) -> dict[str, Any]:
    f = trace_features(trace, scrub=redact_text)
    tid = trace.info.trace_id
    tools: dict[str, int] = {}
    for t in f["tools"]:
        tools[t["name"]] = tools.get(t["name"], 0) + 1
    case = ctx.analysis().case_index.get(tid)
    ctx.seen_traces.add(tid)
    return redact(
        {
            "trace_id": tid,
            "status": f["status"],
            "duration_ms": f["duration_ms"],
            "request": _cut(f["request"], 240),
            "answer": _cut(f["answer"], 240),
            "user_turns": f["n_user_turns"],
            "tool_calls": f["n_tool_calls"],
            "tools": dict(list(tools.items())[:10]),
            "failed_tool_calls": f["n_tool_errors"],
            "findings": ctx.findings_by_trace().get(tid, []),
            **({"query_type": case.query_type} if case and case.query_type else {}),
        }
    )


def fetch_checked(ctx: ToolContext, trace_id: str):
    """The trace, if it exists and belongs to the session's experiment; ToolError otherwise."""
    try:
        trace = ctx.mlflow_client().get_trace(trace_id)
    except Exception:
        trace = None
    if trace is None:
        raise ToolError(f"no trace {trace_id!r} in the tracking store")
    if str(trace.info.experiment_id) != str(ctx.config.experiment_id):
        raise ToolError(f"trace {trace_id!r} is not in experiment {ctx.config.experiment_id}")
    return trace


def search_traces(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    size = int(args.get("page_size", 10))
    text = (args.get("text") or "").lower().strip()
    ids = None
    if args.get("finding"):
        finding = ctx.analysis().finding(args["finding"])
        if finding is None:
            raise ToolError(
                f"no finding {args['finding']!r}; the findings are: " + ", ".join(f.id for f in ctx.analysis().findings)
            )
        ids = finding.all_evidence or finding.evidence
    elif args.get("query_type"):
        qtype = ctx.analysis().query_type(args["query_type"])
        if qtype is None:
            raise ToolError(
                f"no query type {args['query_type']!r}; they are: "
                + ", ".join(q.name for q in ctx.analysis().query_types)
            )
        ids = qtype.evidence
    if ids is not None:
        start = int(args.get("page_token") or 0) if str(args.get("page_token") or "0").isdigit() else 0
        page = [t for t in (_fetch_quiet(ctx, tid) for tid in ids[start : start + size]) if t is not None]
        nxt = str(start + size) if start + size < len(ids) else None
        total = len(ids)
    else:
        page, nxt = _search(ctx, args, size)
        total = None
    found = [_summary(ctx, t) for t in page]
    if text:
        found = [s for s in found if text in (s["request"] + " " + s["answer"]).lower()]
    out: dict[str, Any] = {"traces": found, "next_page_token": nxt}
    if total is not None:
        out["total"] = total
    if text:
        out["note"] = "text matches this page only; continue with next_page_token for more"
    return out


def _fetch_quiet(ctx: ToolContext, trace_id: str):
    try:
        return fetch_checked(ctx, trace_id)
    except ToolError:
        return None


def _search(ctx: ToolContext, args: dict[str, Any], size: int):
    from mlflow.exceptions import MlflowException

    config = ctx.config
    parts = [TraceQuery(config.experiment_id, config.filter_string, config.since_ms).mlflow_filter()]
    if args.get("status"):
        parts.append(f"attributes.status = '{args['status']}'")
    if args.get("min_duration_ms") is not None:
        parts.append(f"attributes.execution_time_ms > {int(args['min_duration_ms'])}")
    if args.get("tool"):
        if not SAFE_TOOL_NAME.match(args["tool"]):
            raise ToolError("tool must be a plain tool/span name (letters, digits, _ . - :)")
        parts.append(f"span.name = '{args['tool']}'")
    try:
        page = ctx.mlflow_client().search_traces(
            locations=[config.experiment_id],
            filter_string=" AND ".join(p for p in parts if p) or None,
            max_results=size,
            order_by=["timestamp_ms DESC"],
            page_token=args.get("page_token") or None,
            include_spans=True,
        )
    except MlflowException as exc:
        raise ToolError(f"the trace search failed: {str(exc)[:200]}") from None
    return list(page), page.token or None


def _conversation(trace: Any) -> dict[str, Any]:
    """The exchange in order: user and assistant messages, tool calls with their results."""
    spans = sorted(trace_spans(trace), key=lambda s: getattr(s, "start_time_ns", 0) or 0)
    system, items, seen = None, [], set()
    for span in spans:
        kind = span_type(span)
        if kind in ("CHAT_MODEL", "LLM"):
            messages = span.inputs.get("messages") if isinstance(span.inputs, dict) else None
            for m in messages if isinstance(messages, list) else []:
                if not isinstance(m, dict):
                    continue
                text = _message_text(m)
                if m.get("role") == "system":
                    system = system or _cut(text, SYSTEM_PROMPT_CHARS)
                elif m.get("role") == "user" and text and text not in seen:
                    seen.add(text)
                    items.append({"user": _cut(text, ITEM_CHARS)})
            out = span.outputs
            said = _message_text(out) if isinstance(out, dict) else (out if isinstance(out, str) else "")
            if said:
                items.append({"assistant": _cut(said, ITEM_CHARS)})
        elif kind in ("TOOL", "RETRIEVER"):
            items.append(
                {
                    "tool": span.name,
                    "args": _cut(span.inputs, 300),
                    "result": _cut(span.outputs, 400),
                    "status": span_status(span),
                }
            )
    root = root_span(spans)
    body: dict[str, Any] = {
        "system_prompt": system,
        "request": _cut(root.inputs, ITEM_CHARS) if root else None,
        "final_answer": _cut(root.outputs, 1500) if root else None,
        "turns": [],
    }
    used = 0
    for item in items:
        size = len(to_text(item))
        if used + size > CONVERSATION_CHARS:
            body["turns"].append({"note": f"{len(items) - len(body['turns'])} more items cut"})
            break
        body["turns"].append(item)
        used += size
    return body


def _spans(trace: Any) -> list[dict[str, Any]]:
    spans = sorted(trace_spans(trace), key=lambda s: getattr(s, "start_time_ns", 0) or 0)
    names = {s.span_id: s.name for s in spans}
    shown = []
    for s in spans[:MAX_SPANS_SHOWN]:
        shown.append(
            {
                "name": s.name,
                "type": span_type(s),
                "parent": names.get(s.parent_id),
                "status": span_status(s),
                "ms": round(span_duration_ms(s), 1),
                "inputs": _cut(s.inputs, 240),
                "outputs": _cut(s.outputs, 240),
            }
        )
    if len(spans) > MAX_SPANS_SHOWN:
        shown.append({"note": f"{len(spans) - MAX_SPANS_SHOWN} more spans"})
    return shown


def get_trace(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    trace = fetch_checked(ctx, args["trace_id"])
    detail = args.get("detail", "summary")
    out = _summary(ctx, trace)
    if detail == "summary":
        f = trace_features(trace, scrub=redact_text)
        out.update(
            {
                "tool_sequence": [
                    {
                        "tool": t["name"],
                        "ok": t["ok"],
                        "args": t["args"],
                        **({"error": t["error"]} if t["error"] else {}),
                    }
                    for t in f["tools"][:30]
                ],
                "user_messages": f["user_turns"][:8],
                "exceptions": f["exceptions"],
                "tokens": f["tokens_in"] + f["tokens_out"],
                "unconfirmed_writes": f["n_unconfirmed_writes"],
            }
        )
    elif detail == "conversation":
        out["conversation"] = _conversation(trace)
    else:
        out["spans"] = _spans(trace)
    return redact(out)


_STATUS = {"enum": ["OK", "ERROR"]}
TOOLS = [
    Tool(
        "search_traces",
        "Find traces of the experiment. Filter by status, a tool (span) name, minimum duration, a finding id or "
        "query type from the analysis, and/or text in the request/answer. Returns short summaries (id, request, "
        "answer, tools, findings) and next_page_token.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "status": _STATUS,
                "tool": {"type": "string", "maxLength": 100, "description": "traces that called this tool/span"},
                "min_duration_ms": {"type": "integer", "minimum": 0},
                "finding": {"type": "string", "maxLength": 80, "description": "traces that exhibit this finding id"},
                "query_type": {"type": "string", "maxLength": 120, "description": "example traces of this query type"},
                "text": {
                    "type": "string",
                    "maxLength": 100,
                    "description": "case-insensitive substring of request or answer",
                },
                "page_token": {"type": "string", "maxLength": 2000},
                "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
        },
        search_traces,
    ),
    Tool(
        "get_trace",
        "Read one trace. detail=summary: tool sequence, user messages, errors (smallest). detail=conversation: the "
        "agent's system prompt/policy and the whole exchange in order. detail=spans: the span tree with previews.",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["trace_id"],
            "properties": {
                "trace_id": {"type": "string", "minLength": 3, "maxLength": 100},
                "detail": {"enum": ["summary", "conversation", "spans"]},
            },
        },
        get_trace,
    ),
]
