"""The evaluation dataset: rows as data (`evaluation/eval_dataset.json`) and the loader next to them."""

from __future__ import annotations

from typing import Any

from trace2eval.generate.script import render_eval_dataset
from trace2eval.sessions.files import dumps_json
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session


def write_dataset(
    session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None, merged: bool = False
) -> None:
    """`merged=True`: the rows start from the file's current rows, so a person's edits are in them."""
    covered = sorted({f for r in rows for f in (_metadata(r).get("findings") or []) if isinstance(f, str)})
    data = {"rows": rows, "skipped": skipped or [], "findings_covered": covered}
    write_generated(session.dir, "evaluation/eval_dataset.json", dumps_json(data) + "\n", "dataset", merged=merged)
    summary = f"{len(rows)} rows from production traces; findings covered: {len(covered)}."
    write_generated(session.dir, "evaluation/eval_dataset.py", render_eval_dataset(summary), "dataset")


def is_curated(row: dict[str, Any]) -> bool:
    """A row someone invested in, which no automatic repair or size limit may drop.

    Pinned rows (`metadata.pinned`), rows with expectations (a person's or an LLM's), rows an LLM
    proposed, and rows trace2eval did not draw itself (a person wrote them: no source trace or
    case type). Only rows drawn automatically from traces may be shed.
    """
    metadata = _metadata(row)
    return bool(
        row.get("expectations")
        or metadata.get("pinned")
        or metadata.get("source") == "llm"
        or metadata.get("expectations_source")
        or not metadata.get("source_trace")
        or not metadata.get("case_type")
    )


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"] if isinstance(row.get("metadata"), dict) else {}
