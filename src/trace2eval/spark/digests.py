"""Per-trace digests as Spark work: spans grouped by trace, `digest_trace()` run on each group.

Each trace's spans are gathered into one row, rebuilt into light span objects on the worker
(`trace2eval.spark.rows`) and digested by the same `digest_trace()` the local engine calls,
redaction included. Besides the digest (JSON text), each output row carries the fields the
population aggregates need as typed columns, so aggregates never parse JSON.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterator

from trace2eval.spark.rows import CHAT_USAGE, trace_from_record

ANALYZER_TOOLS = 40  # `Analyzer.add` keeps the first 40 tool calls of a digest; aggregates see the same

COLUMNS = (
    ("trace_id", "STRING"),
    ("otel_trace_id", "STRING"),
    ("timestamp_ms", "BIGINT"),
    ("status", "STRING"),
    ("duration_ms", "DOUBLE"),
    ("tokens", "BIGINT"),
    ("n_tool_calls", "BIGINT"),
    ("n_user_turns", "BIGINT"),
    ("has_answer", "BOOLEAN"),
    ("request_shape", "STRING"),
    ("root_name", "STRING"),
    ("span_types", "ARRAY<STRING>"),
    ("tools", "ARRAY<STRUCT<pos: INT, name: STRING, ok: BOOLEAN, error: STRING, ms: DOUBLE, nested: BOOLEAN>>"),
    ("exceptions", "ARRAY<STRUCT<pos: INT, type: STRING, message: STRING>>"),
    ("tool_path", "STRING"),
    ("execution_ms", "BIGINT"),
    ("total_tokens", "BIGINT"),
    ("digest", "STRING"),
    ("skipped", "STRING"),
    ("failure", "STRING"),
)
DIGEST_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
SKIP_INCOMPLETE = "incomplete"  # no root span: still running, or spans lost in ingestion
SKIP_ERROR = "error"  # the digest step raised on this trace


def digest_frame(tables, trace_ids=None, label_name: str | None = None):
    """One row per trace (DIGEST_SCHEMA), lazily: nothing runs until an action.

    `trace_ids`: an optional DataFrame with one column `trace_id` (OpenTelemetry ids) restricting
    which traces are digested (filters and --since are applied before the expensive step).
    """
    from pyspark.sql import functions as F

    spans = tables.spans
    if trace_ids is not None:
        spans = spans.join(trace_ids, on="trace_id", how="left_semi")
    span_struct = F.struct(*[c for c in spans.columns if c != "trace_id"])
    grouped = spans.groupBy("trace_id").agg(F.collect_list(span_struct).alias("spans"))
    if tables.metadata is not None:
        meta = tables.metadata.withColumnRenamed("otel_trace_id", "trace_id")
        grouped = grouped.join(meta, on="trace_id", how="left")
    else:
        grouped = grouped.select(
            "*", *[F.lit(None).cast("string").alias(c) for c in ("trace_metadata", "tags", "assessments")]
        )
    return grouped.mapInArrow(functools.partial(digest_batches, label_name=label_name), DIGEST_SCHEMA)


def digest_batches(batches: Iterator[Any], label_name: str | None = None) -> Iterator[Any]:
    """mapInArrow body: Arrow batches of grouped traces in, Arrow batches of digest rows out."""
    import pyarrow as pa

    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()  # the worker may import mlflow (token usage aggregation)
    schema = _arrow_schema()
    for batch in batches:
        rows = [digest_record(record, label_name) for record in batch.to_pylist()]
        yield pa.RecordBatch.from_pylist(rows, schema=schema)


def digest_record(record: dict[str, Any], label_name: str | None = None) -> dict[str, Any]:
    """One grouped trace → one output row; failures become rows too, never exceptions."""
    from trace2eval.traces.digest import digest_trace

    otel_id = record.get("trace_id")
    try:
        trace = trace_from_record(record, usage_from_spans=usage_from_spans)
        if trace is None:
            return _skipped(otel_id, SKIP_INCOMPLETE, "no root span (still running, or spans missing)")
        row = digest_columns(digest_trace(trace, label_name), otel_id)
        # The trace-info numbers the local engine's span-free index pass reads.
        usage = trace.info.token_usage or {}
        row["execution_ms"] = trace.info.execution_duration
        row["total_tokens"] = int(usage["total_tokens"]) if usage.get("total_tokens") else None
        return row
    except Exception as exc:  # one malformed trace must not fail a job over millions
        return _skipped(otel_id, SKIP_ERROR, f"{type(exc).__name__}: {exc}"[:500])


def digest_columns(digest: dict[str, Any], otel_id: str | None) -> dict[str, Any]:
    tools = digest.get("tools") or []
    return {
        "trace_id": digest["trace_id"],
        "otel_trace_id": otel_id,
        "timestamp_ms": int(digest.get("timestamp_ms") or 0),
        "status": digest["status"],
        "duration_ms": float(digest["duration_ms"]),
        "tokens": int(digest["tokens_in"]) + int(digest["tokens_out"]),
        "n_tool_calls": int(digest["n_tool_calls"]),
        "n_user_turns": int(digest["n_user_turns"]),
        "has_answer": bool(digest["has_answer"]),
        "request_shape": digest["request_shape"],
        "root_name": digest.get("root_name") or "",
        "span_types": list(digest.get("span_types") or {}),
        "tools": [
            {
                "pos": i,
                "name": t["name"],
                "ok": bool(t["ok"]),
                "error": t.get("error"),
                "ms": float(t["ms"]),
                "nested": bool(t.get("nested")),
            }
            for i, t in enumerate(tools[:ANALYZER_TOOLS])
        ],
        "exceptions": [
            {"pos": i, "type": str(e[0]), "message": str(e[1])} for i, e in enumerate(digest.get("exceptions") or [])
        ],
        "tool_path": "|".join(sorted({t["name"] for t in tools})),
        "execution_ms": None,
        "total_tokens": None,
        "digest": json.dumps(digest, ensure_ascii=False, default=str),
        "skipped": None,
        "failure": None,
    }


def _skipped(otel_id: str | None, kind: str, why: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(name for name, _ in COLUMNS)
    row.update(
        trace_id=otel_id, otel_trace_id=otel_id, span_types=[], tools=[], exceptions=[], skipped=kind, failure=why
    )
    return row


def usage_from_spans(spans) -> dict[str, int] | None:
    """Token usage summed over a trace's spans by MLflow's own aggregation (no double counting
    of a parent that already reports its children's usage). Like MLflow, give up quietly on
    malformed usage attributes."""
    from mlflow.tracing.utils import SpanAggregationNode, aggregate_usage_from_span_nodes

    try:
        nodes = [
            SpanAggregationNode(span_id=s.span_id, parent_id=s.parent_id, data=s.attributes.get(CHAT_USAGE))
            for s in spans
        ]
        return aggregate_usage_from_span_nodes(nodes)
    except Exception:
        return None


@functools.lru_cache(maxsize=1)
def _arrow_schema():
    import pyarrow as pa

    tool = pa.struct(
        [
            ("pos", pa.int32()),
            ("name", pa.string()),
            ("ok", pa.bool_()),
            ("error", pa.string()),
            ("ms", pa.float64()),
            ("nested", pa.bool_()),
        ]
    )
    exc = pa.struct([("pos", pa.int32()), ("type", pa.string()), ("message", pa.string())])
    return pa.schema(
        [
            ("trace_id", pa.string()),
            ("otel_trace_id", pa.string()),
            ("timestamp_ms", pa.int64()),
            ("status", pa.string()),
            ("duration_ms", pa.float64()),
            ("tokens", pa.int64()),
            ("n_tool_calls", pa.int64()),
            ("n_user_turns", pa.int64()),
            ("has_answer", pa.bool_()),
            ("request_shape", pa.string()),
            ("root_name", pa.string()),
            ("span_types", pa.list_(pa.string())),
            ("tools", pa.list_(tool)),
            ("exceptions", pa.list_(exc)),
            ("tool_path", pa.string()),
            ("execution_ms", pa.int64()),
            ("total_tokens", pa.int64()),
            ("digest", pa.string()),
            ("skipped", pa.string()),
            ("failure", pa.string()),
        ]
    )
