"""The evaluation dataset: rows as data (`evaluation/eval_dataset.json`) and the loader next to them."""

from __future__ import annotations

import json
from typing import Any

from trace2eval.generate.script import render_eval_dataset
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session


def write_dataset(session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None,
                  merged: bool = False) -> None:
    """`merged=True`: the rows start from the file's current rows, so a person's edits are in them."""
    covered = sorted({f for r in rows for f in r["metadata"].get("findings", [])})
    data = {"rows": rows, "skipped": skipped or [], "findings_covered": covered}
    write_generated(session.dir, "evaluation/eval_dataset.json",
                    json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", "dataset", merged=merged)
    summary = f"{len(rows)} rows from production traces; findings covered: {len(covered)}."
    write_generated(session.dir, "evaluation/eval_dataset.py", render_eval_dataset(summary), "dataset")
