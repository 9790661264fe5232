"""Light trace objects rebuilt from OpenTelemetry span rows, shaped like MLflow's own.

`trace_features()` and `digest_trace()` read traces by duck typing. These classes give them
exactly what an `mlflow.entities.Trace` read from a tracking store would: the same attribute
decoding, the same root-first span order, the same trace state, times and token usage. So the
Spark engine runs the very same feature code as the local engine and the two cannot drift.

Pure Python (standard library only): it runs inside Spark workers, once per trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

REQUEST_ID = "mlflow.traceRequestId"
SPAN_TYPE = "mlflow.spanType"
SPAN_INPUTS = "mlflow.spanInputs"
SPAN_OUTPUTS = "mlflow.spanOutputs"
CHAT_USAGE = "mlflow.chat.tokenUsage"
TOKEN_USAGE_METADATA = "mlflow.trace.tokenUsage"

# Spans from OpenTelemetry clients other than MLflow carry GenAI semantic-convention attributes
# instead of MLflow's; Databricks documents this mapping for how MLflow shows them.
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_SPAN_TYPES = {
    "chat": "CHAT_MODEL",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "response": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "create_agent": "AGENT",
    "invoke_agent": "AGENT",
}
GEN_AI_INPUTS = "gen_ai.input.messages"
GEN_AI_OUTPUTS = "gen_ai.output.messages"

_OTEL_ID = re.compile(r"([0-9a-fA-F]{32})$")


def decode_attribute(value: Any) -> Any:
    """One attribute value, decoded the way MLflow's span attribute registry does it.

    MLflow stores every attribute as a JSON string: a value that parses is the parsed value, one
    that does not (a plain string an OpenTelemetry client set) stays as it is, and an empty string
    reads as None. Typed values (from a VARIANT column) are already decoded: they pass unchanged.
    """
    if not isinstance(value, str):
        return value
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def status_code(code: Any) -> str:
    """`STATUS_CODE_ERROR`, `ERROR`, `2` … → `ERROR`; likewise OK; anything else is UNSET."""
    text = str(code if code is not None else "").strip().upper().removeprefix("STATUS_CODE_")
    if text in ("OK", "1"):
        return "OK"
    if text in ("ERROR", "2"):
        return "ERROR"
    return "UNSET"


def otel_trace_id(trace_id: str) -> str:
    """The 32-hex OpenTelemetry id inside an MLflow trace id (`tr-<hex>`, `trace:/<loc>/<hex>`)."""
    text = str(trace_id or "").strip()
    match = _OTEL_ID.search(text)
    return match.group(1).lower() if match else text


@dataclass(frozen=True)
class RowStatus:
    status_code: str
    description: str = ""


@dataclass(frozen=True)
class RowEvent:
    name: str
    timestamp: int | None
    attributes: dict[str, Any]


@dataclass
class RowSpan:
    """One span, with the properties `mlflow.entities.Span` exposes."""

    span_id: str
    parent_id: str | None
    name: str
    start_time_ns: int | None
    end_time_ns: int | None
    status: RowStatus
    attributes: dict[str, Any]
    events: list[RowEvent]

    @property
    def span_type(self) -> Any:
        kind = self.attributes.get(SPAN_TYPE)
        if kind is None and self.attributes.get(GEN_AI_OPERATION) is not None:
            kind = GEN_AI_SPAN_TYPES.get(str(self.attributes[GEN_AI_OPERATION]).lower())
        return kind

    @property
    def inputs(self) -> Any:
        value = self.attributes.get(SPAN_INPUTS)
        return self.attributes.get(GEN_AI_INPUTS) if value is None else value

    @property
    def outputs(self) -> Any:
        value = self.attributes.get(SPAN_OUTPUTS)
        return self.attributes.get(GEN_AI_OUTPUTS) if value is None else value


@dataclass
class RowAssessment:
    name: str | None
    feedback: Any
    valid: bool = True


@dataclass(frozen=True)
class _Feedback:
    value: Any


@dataclass
class RowTraceInfo:
    """What `digest_trace()` reads from `mlflow.entities.TraceInfo`."""

    trace_id: str
    request_time: int
    state: str
    execution_duration: int | None
    trace_metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    assessments: list[RowAssessment] = field(default_factory=list)
    aggregated_usage: dict[str, int] | None = None

    @property
    def token_usage(self) -> dict[str, int] | None:
        text = self.trace_metadata.get(TOKEN_USAGE_METADATA)
        if text:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return self.aggregated_usage


@dataclass
class RowTraceData:
    spans: list[RowSpan]


@dataclass
class RowTrace:
    info: RowTraceInfo
    data: RowTraceData


def span_from_row(row: dict[str, Any]) -> RowSpan:
    """A span from one row of the canonical projection (see `trace2eval.spark.tables`)."""
    attributes = _json_object(row.get("attributes"))
    events = []
    for event in _json_list(row.get("events")):
        if isinstance(event, dict):
            events.append(
                RowEvent(
                    str(event.get("name") or ""),
                    _int(event.get("time_unix_nano")),
                    _json_object(event.get("attributes")),
                )
            )
    parent = row.get("parent_span_id") or None
    return RowSpan(
        span_id=str(row.get("span_id") or ""),
        parent_id=str(parent) if parent else None,
        name=str(row.get("name") or ""),
        start_time_ns=_int(row.get("start_time_unix_nano")),
        end_time_ns=_int(row.get("end_time_unix_nano")) or None,
        status=RowStatus(status_code(row.get("status_code")), str(row.get("status_message") or "")),
        attributes={k: decode_attribute(v) for k, v in attributes.items()},
        events=events,
    )


def dedupe_spans(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per span id: ingestion is at-least-once, so a span can be stored twice.

    Keeps the most complete copy (ended, latest end time), choosing by content so the result
    does not depend on the order Spark collected the rows in.
    """
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row.get("span_id") or "")
        kept = best.get(key)
        if kept is None or _completeness(row) > _completeness(kept):
            best[key] = row
    return list(best.values())


def _completeness(row: dict[str, Any]) -> tuple:
    end = _int(row.get("end_time_unix_nano")) or -1
    return (
        end,
        str(row.get("attributes") or ""),
        str(row.get("events") or ""),
        str(row.get("status_code") or ""),
        str(row.get("name") or ""),
    )


def order_spans(spans: list[RowSpan]) -> list[RowSpan]:
    """Root first, then by start time: the order MLflow's tracking store returns spans in.

    Spans starting at the same nanosecond come from MLflow in the order they were stored, which
    for spans exported as they end is the order they ended; rows carry no storage order, so ties
    go by end time, then span id. Only spans with identical start and end times can differ from
    MLflow's order (and then only if their contents differ).
    """
    never = float("inf")
    return sorted(
        spans,
        key=lambda s: (
            0 if s.parent_id is None else 1,
            s.start_time_ns or 0,
            s.end_time_ns if s.end_time_ns is not None else never,
            s.span_id,
        ),
    )


def trace_from_record(record: dict[str, Any], usage_from_spans=None) -> RowTrace | None:
    """A trace from its span rows plus optional metadata; None when it has no root span yet.

    `record`: {"trace_id", "spans": [row, ...], "trace_metadata"?, "tags"?, "assessments"?} with
    metadata values as JSON text (maps or lists). `usage_from_spans(spans)` aggregates token
    usage the way MLflow does when the metadata does not carry it.
    """
    spans = order_spans([span_from_row(r) for r in dedupe_spans(list(record.get("spans") or []))])
    roots = [s for s in spans if s.parent_id is None]
    if not roots:
        return None
    root = roots[0]
    metadata = {str(k): str(v) for k, v in _json_object(record.get("trace_metadata")).items() if v is not None}
    tags = {str(k): str(v) for k, v in _json_object(record.get("tags")).items() if v is not None}
    trace_id = root.attributes.get(REQUEST_ID) or record.get("trace_id")
    start = root.start_time_ns or 0
    end = root.end_time_ns
    # MLflow's trace processor: state from the root's status (UNSET counts as OK), times in ms.
    state = "IN_PROGRESS" if end is None else ("ERROR" if root.status.status_code == "ERROR" else "OK")
    info = RowTraceInfo(
        trace_id=str(trace_id),
        request_time=start // 1_000_000,
        state=state,
        execution_duration=(end - start) // 1_000_000 if end is not None else None,
        trace_metadata=metadata,
        tags=tags,
        assessments=_assessments(record.get("assessments")),
    )
    if TOKEN_USAGE_METADATA not in metadata and usage_from_spans is not None:
        info.aggregated_usage = usage_from_spans(spans)
    return RowTrace(info, RowTraceData(spans))


def _assessments(value: Any) -> list[RowAssessment]:
    """Assessments from JSON: MLflow's `Assessment.to_dictionary()` shape, or flatter variants."""
    found = []
    for item in _json_list(value):
        if not isinstance(item, dict):
            continue
        name = item.get("assessment_name") or item.get("name")
        feedback = item.get("feedback")
        if isinstance(feedback, dict):
            feedback = _Feedback(feedback.get("value"))
        elif "value" in item and item.get("expectation") is None:
            feedback = _Feedback(item.get("value"))
        else:
            feedback = None
        valid = item.get("valid")
        found.append(RowAssessment(name, feedback, valid is not False))
    return found


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    if isinstance(parsed, list):  # a map stored as key/value entries
        return {str(e.get("key")): e.get("value") for e in parsed if isinstance(e, dict) and "key" in e}
    return parsed if isinstance(parsed, dict) else {}


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if not value:
        return []
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
