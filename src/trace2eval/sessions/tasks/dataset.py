"""Dataset: turn the analysis' chosen traces into rows, data in JSON, loader in Python."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trace2eval import ui
from trace2eval.errors import SourceError
from trace2eval.generate.dataset import build_rows, select_cases
from trace2eval.generate.script import render_eval_dataset
from trace2eval.llm import llm_step
from trace2eval.sessions import suite
from trace2eval.sessions.files import dumps_json, read_json
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session
from trace2eval.spark.location import is_uc_source
from trace2eval.traces.source import fetch_row_trace, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    analysis = session.analysis()
    cases = select_cases(analysis)
    if is_uc_source(config.source):
        # One Spark query for every chosen trace, from the same tables the analysis read.
        from trace2eval.spark.engine import fetch

        with ui.activity(f"Fetching {len(cases)} dataset traces from {config.source}", unit="traces"):
            traces = fetch(config, [c.trace_id for c in cases])
        rows, skipped = build_rows(cases, traces.get, analysis.get("case_index"))
    else:
        client = open_client(config.tracking_uri, config.experiment_id)
        with ui.activity("Fetching dataset traces", unit="traces") as progress:
            def fetch_one(trace_id: str):
                trace = fetch_row_trace(client, trace_id)
                progress.update(progress.done + 1, len(cases))
                return trace

            rows, skipped = build_rows(cases, fetch_one, analysis.get("case_index"))
    nightly = suite.is_nightly(session)
    merge: dict[str, int] = {}
    if nightly:  # append rows for traces the living suite has never used to its rows (edits kept)
        rows, merge = suite.merge_rows(session, rows)
        ui.say(f"Suite dataset: {merge['kept']} rows kept, {merge['added']} added, {merge['duplicates']} already in the suite"
               + (f", {merge['evicted']} oldest dropped (max_suite_rows)" if merge["evicted"] else ""))
    if not rows:
        raise SourceError("none of the selected traces could be read back for the dataset",
                          "check that the traces still exist in the experiment, then rerun the dataset task")
    write_dataset(session, rows, skipped, merged=nightly)
    kinds = _case_types(rows)
    ui.say(f"Dataset: {len(rows)} rows ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})")
    llm = llm_step(session, "dataset")
    if llm:  # the LLM may have added rows or expectations: report what is on disk now
        rows = read_json(session.dataset_json)["rows"]
        kinds = _case_types(rows)
        llm["rows_with_expectations"] = sum(bool(r.get("expectations")) for r in rows)
    return {"rows": len(rows), "skipped": len(skipped), "case_types": dict(kinds), **merge, **llm}


def write_dataset(session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None,
                  merged: bool = False) -> None:
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
    return bool(row.get("expectations") or metadata.get("pinned") or metadata.get("source") == "llm"
                or metadata.get("expectations_source") or not metadata.get("source_trace")
                or not metadata.get("case_type"))


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"] if isinstance(row.get("metadata"), dict) else {}


def _case_types(rows: list[dict[str, Any]]) -> Counter:
    return Counter(str(_metadata(r).get("case_type") or "hand-written") for r in rows)
