"""Dataset: turn the analysis' chosen traces into rows, data in JSON, loader in Python."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trace2eval import ui
from trace2eval.errors import SourceError
from trace2eval.generate.dataset import build_rows, select_cases
from trace2eval.generate.script import render_eval_dataset
from trace2eval.llm import llm_step
from trace2eval.sessions.files import read_json, write_json, write_text
from trace2eval.sessions.session import Session
from trace2eval.traces.source import fetch_trace, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    analysis = session.analysis()
    client = open_client(config.tracking_uri, config.experiment_id)
    cases = select_cases(analysis)
    with ui.activity("Fetching dataset traces", unit="traces") as progress:
        def fetch(trace_id: str):
            trace = fetch_trace(client, trace_id)
            progress.update(progress.done + 1, len(cases))
            return trace

        rows, skipped = build_rows(cases, fetch, analysis.get("case_index"))
    if not rows:
        raise SourceError("none of the selected traces could be read back for the dataset",
                          "check that the traces still exist in the experiment, then rerun the dataset task")
    write_dataset(session, rows, skipped)
    kinds = Counter(r["metadata"]["case_type"] for r in rows)
    ui.say(f"Dataset: {len(rows)} rows ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})")
    llm = llm_step(session, "dataset")
    if llm:  # the LLM may have added rows or expectations: report what is on disk now
        rows = read_json(session.dataset_json)["rows"]
        kinds = Counter(r["metadata"]["case_type"] for r in rows)
        llm["rows_with_expectations"] = sum(bool(r.get("expectations")) for r in rows)
    return {"rows": len(rows), "skipped": len(skipped), "case_types": dict(kinds), **llm}


def write_dataset(session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None) -> None:
    covered = sorted({f for r in rows for f in r["metadata"].get("findings", [])})
    write_json(session.dataset_json, {"rows": rows, "skipped": skipped or [], "findings_covered": covered})
    summary = f"{len(rows)} rows from production traces; findings covered: {len(covered)}."
    write_text(session.evaluation_dir / "eval_dataset.py", render_eval_dataset(summary))
