"""Dataset: turn the analysis' chosen traces into rows, data in JSON, loader in Python."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trace2eval import ui
from trace2eval.errors import SourceError
from trace2eval.generate.dataset import build_rows, select_cases
from trace2eval.sessions import suite
from trace2eval.sessions.refinement import Refinement
from trace2eval.sessions.session import Session
from trace2eval.state.dataset import load_dataset, write_dataset
from trace2eval.traces.sources import trace_source


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    analysis = session.analysis().model_dump()  # generate/ reads the plain analysis
    cases = select_cases(analysis)
    # A conversation's case is every one of its turns.
    with trace_source(config).fetching([t for c in cases for t in (c.turns or [c.trace_id])]) as get_trace:
        rows, skipped = build_rows(cases, get_trace, analysis.get("case_index"))
    nightly = suite.is_nightly(session)
    merge: dict[str, int] = {}
    if nightly:  # append rows for traces the living suite has never used to its rows (edits kept)
        rows, merge = suite.merge_rows(session, rows)
        ui.say(
            f"Suite dataset: {merge['kept']} rows kept, {merge['added']} added, {merge['duplicates']} already in the suite"
            + (f", {merge['evicted']} oldest dropped (max_suite_rows)" if merge["evicted"] else "")
        )
    if not rows:
        raise SourceError(
            "none of the selected traces could be read back for the dataset",
            "check that the traces still exist in the experiment, then rerun the dataset task",
        )
    write_dataset(session, rows, skipped, merged=nightly)
    kinds = _case_types(rows)
    sessions = {_metadata(r).get("session") for r in rows} - {None}
    of_conversations = f"; {len(sessions)} conversations" if sessions else ""
    ui.say(f"Dataset: {len(rows)} rows ({', '.join(f'{n} {k}' for k, n in kinds.most_common())}){of_conversations}")
    conversations = {"conversations": len(sessions)} if sessions else {}
    return {"rows": len(rows), "skipped": len(skipped), "case_types": dict(kinds), **merge, **conversations}


def after_llm(session: Session, summary: dict[str, Any], refinement: Refinement) -> dict[str, Any]:
    """The LLM may have added rows or expectations: report what is on disk now."""
    dataset = load_dataset(session)  # checked against the model: what the LLM wrote must load
    rows = [r.model_dump() for r in dataset.rows]
    kinds = _case_types(rows)
    return {
        **summary,
        "rows": len(rows),
        "case_types": dict(kinds),
        "rows_with_expectations": sum(bool(r.get("expectations")) for r in rows),
        **({"conversations": len(dataset.sessions)} if dataset.sessions else {}),
    }


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"] if isinstance(row.get("metadata"), dict) else {}


def _case_types(rows: list[dict[str, Any]]) -> Counter:
    return Counter(str(_metadata(r).get("case_type") or "hand-written") for r in rows)
