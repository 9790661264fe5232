"""Poison traces: real traces, written through MLflow, whose content breaks naive readers.

Each kind is what a production agent (or an attacker) can put in a trace: non-finite token
counts, a huge integer in tool arguments, JSON nested thousands of levels deep, a lone surrogate,
a NUL in a span name. The corrupt span rows are written into the store's `spans` table
directly, as a damaged database or a buggy exporter would leave them.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
import time
from typing import Any

from tracefactory import TraceStore

# Kinds a run must skip or survive; `corrupt_json` and `span_missing_fields` damage the spans table.
KINDS = (
    "nan_tokens",
    "nan_outputs",
    "huge_int_args",
    "deep_inputs",
    "deep_outputs_900",
    "lone_surrogate",
    "nul_in_name",
    "corrupt_json",
    "span_missing_fields",
)


SURROGATE = "LONE-SURROGATE"


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


def write_trace(
    store: TraceStore,
    request: str,
    tool: str = "lookup",
    tool_inputs: Any = None,
    tool_outputs: Any = None,
    llm_usage: dict | None = None,
    user_text: str | None = None,
    root_extra: dict | None = None,
    root_outputs: Any = None,
    start_time_ns: int | None = None,
    tool_error: bool = False,
    status: str = "OK",
) -> str:
    """One trace (AGENT root, an LLM span, one tool span), timestamped now unless `start_time_ns`."""
    from mlflow.entities import SpanStatusCode, SpanType

    mlflow = store.mlflow
    mlflow.set_tracking_uri(store.uri)
    t0 = start_time_ns or time.time_ns()
    root = mlflow.start_span_no_context(
        name="agent",
        span_type=SpanType.AGENT,
        inputs={"query": request, **(root_extra or {})},
        experiment_id=store.experiment_id,
        start_time_ns=t0,
    )
    llm = mlflow.start_span_no_context(
        name="llm",
        span_type=SpanType.CHAT_MODEL,
        parent_span=root,
        start_time_ns=t0 + 1_000,
        inputs={"messages": [{"role": "user", "content": user_text or request}]},
    )
    if llm_usage is not None:
        llm.set_attribute("mlflow.chat.tokenUsage", llm_usage)
    llm.end(outputs={"content": "ok", "tool_calls": []}, end_time_ns=t0 + 2_000_000)
    span = mlflow.start_span_no_context(
        name=tool,
        span_type=SpanType.TOOL,
        parent_span=root,
        start_time_ns=t0 + 3_000_000,
        inputs=tool_inputs if tool_inputs is not None else {"id": 1},
    )
    span.end(
        outputs=tool_outputs if tool_outputs is not None else {"ok": not tool_error},
        status=SpanStatusCode.ERROR if tool_error else SpanStatusCode.OK,
        end_time_ns=t0 + 5_000_000,
    )
    root.end(
        outputs=root_outputs if root_outputs is not None else {"response": f"Done: {request}"},
        status=SpanStatusCode.ERROR if status == "ERROR" else SpanStatusCode.OK,
        end_time_ns=t0 + 900_000_000,
    )
    return root.trace_id


def add_current_traces(store: TraceStore, start: int, n: int) -> list[str]:
    """`n` order-support traces stamped now (as a live agent's are), every third address change failing."""
    return [
        write_trace(
            store,
            f"Where is order {i}? Please change the address.",
            tool="update_address",
            tool_inputs={"id": i},
            tool_error=i % 3 == 0,
            root_outputs={"response": f"Order {i} updated."},
        )
        for i in range(start, start + n)
    ]


def add_poison_traces(store: TraceStore) -> dict[str, str]:
    """One trace of each kind; returns kind → trace id."""
    ids: dict[str, str] = {}
    # Failed traces are what the dataset picks first: the readable poison kinds reach its rows.
    poison = functools.partial(write_trace, status="ERROR")
    nan, inf = float("nan"), float("inf")
    ids["nan_tokens"] = poison(
        store, "poison: nan tokens", llm_usage={"input_tokens": nan, "output_tokens": inf, "total_tokens": nan}
    )
    ids["nan_outputs"] = poison(
        store,
        "poison: nan outputs",
        tool_outputs={"score": nan},
        root_outputs={"response": "Scored.", "score": nan, "ceiling": inf},
    )
    ids["huge_int_args"] = poison(
        store,
        "poison: huge int",
        tool="update_payment",
        tool_inputs={"amount": 10**400},
        root_extra={"amount": 10**309},
    )
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)  # MLflow's json.dumps needs it to write what the reader must survive
    try:
        ids["deep_inputs"] = poison(
            store, "poison: deep inputs", tool_inputs={"q": _deep(5000)}, root_extra={"context": _deep(5000)}
        )
        # Shallow enough for json to read back, deep enough for a recursive walk to hit the limit.
        ids["deep_outputs_900"] = poison(
            store,
            "poison: deep outputs",
            tool_outputs={"r": _deep(900)},
            root_outputs={"response": "Deep.", "detail": _deep(900)},
        )
    finally:
        sys.setrecursionlimit(limit)
    # MLflow cannot hand a lone surrogate to sqlite (the trace is lost); a store that keeps JSON escapes
    # (a server, Databricks) returns one, so the escape is put into the stored span text below.
    ids["lone_surrogate"] = poison(
        store,
        "poison: surrogate",
        user_text=f"poison: surrogate {SURROGATE} here",
        tool_outputs={"text": f"bad {SURROGATE} text"},
        root_outputs={"response": f"Answer with {SURROGATE} inside"},
    )
    ids["nul_in_name"] = poison(store, "poison: nul", tool="get\x00order", tool_inputs={"name": "a\x00b"})
    ids["corrupt_json"] = poison(store, "poison: corrupt row")
    ids["span_missing_fields"] = poison(store, "poison: missing fields")
    store.mlflow.flush_trace_async_logging()

    db = sqlite3.connect(store.path)
    try:
        db.execute(
            "UPDATE spans SET content = ? WHERE trace_id = ? AND parent_span_id IS NULL",
            ('{"trace_id": "x", "span_id": ', ids["corrupt_json"]),
        )
        # Inside the span JSON, attribute values are JSON text again: `\\ud800` decodes to a lone surrogate.
        db.execute(
            "UPDATE spans SET content = replace(content, ?, ?) WHERE trace_id = ?",
            (SURROGATE, "\\\\ud800", ids["lone_surrogate"]),
        )
        span_id, content = db.execute(
            "SELECT span_id, content FROM spans WHERE trace_id = ? AND name = 'lookup'", (ids["span_missing_fields"],)
        ).fetchone()
        damaged = {k: v for k, v in json.loads(content).items() if k not in ("name", "start_time_unix_nano", "status")}
        db.execute(
            "UPDATE spans SET content = ? WHERE trace_id = ? AND span_id = ?",
            (json.dumps(damaged), ids["span_missing_fields"], span_id),
        )
        db.commit()
    finally:
        db.close()
    return ids
