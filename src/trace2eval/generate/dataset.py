"""The evaluation dataset: real traces chosen to cover every finding, query type and edge.

Rows are data, never code: they are written to `eval_dataset.json`, which the rendered
`eval_dataset.py` loads. Every string is redacted and huge payloads are truncated with a marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from trace2eval.traces.checks import production_baseline
from trace2eval.traces.features import request_text, to_text, trace_features
from trace2eval.traces.redact import redact

MAX_ROWS = 60
MAX_STRING_CHARS = 20_000  # per string inside inputs/outputs
MAX_ROW_CHARS = 120_000  # per row: a 2 MB output must not bloat the session
EXHIBITS_PER_FINDING = 3
COUNTER_EXAMPLES_PER_FINDING = 1
EXAMPLES_PER_QUERY_TYPE = 2
RANDOM_SLICE = 8


MAX_TURN_ROWS = 2 * MAX_ROWS  # rows in all when cases are conversations of several turns


@dataclass
class Case:
    """A trace to evaluate, or a conversation: `session` and its turns' trace ids in time order."""

    trace_id: str
    reasons: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    case_type: str = "sample"
    session: str | None = None
    turns: list[str] = field(default_factory=list)


def _conversation_of(analysis: dict[str, Any]):
    """trace id -> (session, its turns), for the traces of conversations the analysis cites."""
    turns = (analysis.get("conversations") or {}).get("turns") or {}
    found: dict[str, tuple[str, list[str]]] = {}
    for session, ids in turns.items():
        for trace_id in ids:
            found[trace_id] = (session, list(ids))
    return found


def select_cases(analysis: dict[str, Any], max_rows: int = MAX_ROWS) -> list[Case]:
    """Pick trace ids in priority order: findings, each error pattern, passing counter-examples,
    query types, the slowest traces, each request shape, a plain baseline, then a random slice.

    Where traces belong to conversations (session metadata), the case is the conversation: every
    trace cited from it adds its reasons to one case, and `max_rows` counts conversations."""
    cases: dict[str, Case] = {}
    conversation_of = _conversation_of(analysis)
    turn_rows = 0

    def take(trace_id: str, case_type: str, reason: str, finding: str | None = None) -> None:
        nonlocal turn_rows
        session, turns = conversation_of.get(trace_id, (None, []))
        key = f"session:{session}" if session else trace_id
        case = cases.get(key)
        if case is None:
            if len(cases) >= max_rows or (session and turn_rows + len(turns) > MAX_TURN_ROWS):
                return
            case = cases[key] = Case(trace_id, case_type=case_type, session=session, turns=turns)
            turn_rows += len(turns) or 1
        if reason not in case.reasons:
            case.reasons.append(reason)
        if finding and finding not in case.findings:
            case.findings.append(finding)

    for f in analysis.get("findings", []):
        for tid in f.get("evidence", [])[:EXHIBITS_PER_FINDING]:
            take(tid, "failure", f"exhibits {f['id']}", f["id"])
    for pattern in analysis.get("error_patterns", [])[:15]:
        for tid in pattern.get("evidence", [])[:1]:
            take(tid, "failure", f"error pattern {pattern['name']}: {pattern['message'][:60]}")
    for f in analysis.get("findings", []):
        for tid in f.get("counter_examples", [])[:COUNTER_EXAMPLES_PER_FINDING]:
            take(tid, "counter_example", f"passes {f['id']}")
    for q in analysis.get("query_types", []):
        for tid in q.get("evidence", [])[:EXAMPLES_PER_QUERY_TYPE]:
            take(tid, "query_type", f"query type {q['name']}")
    samples = analysis.get("samples", {})
    for tid in samples.get("slowest", [])[:3]:
        take(tid, "edge", "among the slowest traces")
    for shape in analysis.get("request_shapes", []):
        for tid in shape.get("evidence", [])[:1]:
            take(tid, "edge", f"request shape {shape['shape']}")
    for tid in samples.get("baseline", []):
        take(tid, "baseline", "typical successful trace")
    for tid in samples.get("random", [])[:RANDOM_SLICE]:
        take(tid, "sample", "random slice")
    return list(cases.values())


def _truncate(value: Any, budget: int = MAX_STRING_CHARS) -> Any:
    if isinstance(value, str):
        if len(value) > budget:
            return value[:budget] + f"…[truncated {len(value) - budget} chars by trace2eval]"
        return value
    if isinstance(value, dict):
        return {k: _truncate(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate(v, budget) for v in value]
    return value


def _bounded(value: Any) -> Any:
    value = _truncate(value)
    if len(to_text(value)) > MAX_ROW_CHARS:
        value = _truncate(value, 2_000)
    if len(to_text(value)) > MAX_ROW_CHARS:
        text = to_text(value)
        value = {
            "truncated_payload": text[:MAX_ROW_CHARS] + f"…[truncated {len(text) - MAX_ROW_CHARS} chars by trace2eval]"
        }
    return value


NEAR_DUPLICATE = 0.85  # word-set overlap (Jaccard) at which two requests count as the same


def _words(inputs: Any) -> frozenset[str]:
    text = re.sub(r"\d+", "#", request_text(inputs).lower())
    return frozenset(re.findall(r"[\w#]+", text)[:200])


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= NEAR_DUPLICATE


def build_rows(
    cases: list[Case], fetch, case_index: dict[str, dict[str, Any]] | None = None
) -> tuple[list[dict], list[dict]]:
    """Fetch each case's trace and turn it into a dataset row.

    Returns (rows, skipped): near-identical requests collapse into the first (highest-priority)
    case, and traces that can no longer be read are skipped with the reason.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seen: list[tuple[frozenset[str], int]] = []  # request words of each kept row
    for case in cases:
        if case.session:
            _conversation_rows(case, fetch, case_index, rows, skipped, seen)
            continue
        trace = fetch(case.trace_id)
        if trace is None:
            skipped.append({"trace_id": case.trace_id, "reason": "trace not found"})
            continue
        root = next((s for s in trace.data.spans if s.parent_id is None), None)
        inputs = root.inputs if root is not None else None
        outputs = root.outputs if root is not None else None
        words = _words(inputs)
        twin = next((i for w, i in seen if _similar(w, words)), None)
        # A failure is kept even when its request looks like another's: the behaviour differs.
        if twin is not None and case.case_type != "failure":
            first = rows[twin]
            first["metadata"]["near_duplicates"] = first["metadata"].get("near_duplicates", 0) + 1
            skipped.append(
                {"trace_id": case.trace_id, "reason": f"near-duplicate of {first['metadata']['source_trace']}"}
            )
            continue
        seen.append((words, len(rows)))
        rows.append(_row(case, case.trace_id, trace, inputs, outputs, case_index))
    return rows, skipped


def _root_io(trace) -> tuple[Any, Any]:
    root = next((s for s in trace.data.spans if s.parent_id is None), None)
    return (root.inputs, root.outputs) if root is not None else (None, None)


def _row(case: Case, trace_id: str, trace, inputs: Any, outputs: Any, case_index, **extra: Any) -> dict[str, Any]:
    if not isinstance(inputs, dict):
        inputs = {"request": inputs}  # MLflow needs a dict of inputs
    info = trace.info
    metadata = {
        "source_trace": trace_id,
        "case_type": case.case_type,
        "reasons": case.reasons,
        "findings": case.findings,
        "status": str(getattr(info.state, "value", info.state)),
        "duration_ms": info.execution_duration,
        **extra,
    }
    if case_index and trace_id in case_index:
        metadata["query_type"] = case_index[trace_id].get("query_type")
    # Redacted whole first, then bounded: a cut must not leave half a key behind unrecognized.
    row = {"inputs": _bounded(redact(inputs)), "outputs": _bounded(redact(outputs)), "metadata": redact(metadata)}
    # Read with the row's own inputs and outputs: the scorers see exactly these on production.
    baseline = _baseline(trace, row["inputs"], row["outputs"])
    if baseline is not None:
        row["metadata"]["production_baseline"] = baseline
    return row


def _baseline(trace, inputs: Any, outputs: Any) -> dict[str, Any] | None:
    """What production did on this trace that a next version should keep (checks.production_baseline),
    for the regression scorers. A tool name redaction would change could not match the candidate's
    calls: it is left out rather than stored altered."""
    try:
        baseline = production_baseline(trace_features(trace, inputs, outputs))
    except Exception:  # an unreadable trace still makes a row; it just has no baseline
        return None
    if baseline is not None:
        for key in ("tools", "writes"):
            baseline[key] = [name for name in baseline[key] if redact(name) == name]
    return baseline


def _conversation_rows(case: Case, fetch, case_index, rows: list, skipped: list, seen: list) -> None:
    """One row per turn of the conversation, each naming it in `metadata.session` (not redacted:
    the evaluation groups the turns' traces by this id). A turn whose trace is gone is skipped; the
    conversation is judged a near-duplicate of another by its last turn (which carries the most)."""
    turns = []
    for trace_id in case.turns:
        trace = fetch(trace_id)
        if trace is None:
            skipped.append({"trace_id": trace_id, "reason": "trace not found", "session": case.session})
            continue
        turns.append((trace_id, trace, *_root_io(trace)))
    if not turns:
        return
    words = _words(turns[-1][2])
    twin = next((i for w, i in seen if _similar(w, words)), None)
    if twin is not None and case.case_type != "failure":
        first = rows[twin]
        first["metadata"]["near_duplicates"] = first["metadata"].get("near_duplicates", 0) + 1
        skipped.append(
            {
                "trace_id": case.trace_id,
                "session": case.session,
                "reason": f"near-duplicate of {first['metadata']['source_trace']}",
            }
        )
        return
    seen.append((words, len(rows) + len(turns) - 1))
    # Every turn has its conversation's query type, cited or not.
    typed = next((case_index[t] for t in case.turns if case_index and t in case_index), {})
    extra = {"query_type": typed["query_type"]} if typed.get("query_type") else {}
    for n, (trace_id, trace, inputs, outputs) in enumerate(turns, 1):
        row = _row(case, trace_id, trace, inputs, outputs, case_index, turn=n, turns=len(turns), **extra)
        row["metadata"]["session"] = case.session
        rows.append(row)
