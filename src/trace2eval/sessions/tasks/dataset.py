"""Dataset: turn the analysis' chosen traces into rows, data in JSON, loader in Python."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trace2eval import ui
from trace2eval.errors import SourceError
from trace2eval.generate.dataset import build_rows, select_cases
from trace2eval.generate.script import render_eval_dataset
from trace2eval.sessions.files import write_json, write_text
from trace2eval.sessions.session import Session
from trace2eval.spark.location import is_uc_source
from trace2eval.traces.source import fetch_trace, open_client


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
                trace = fetch_trace(client, trace_id)
                progress.update(progress.done + 1, len(cases))
                return trace

            rows, skipped = build_rows(cases, fetch_one, analysis.get("case_index"))
    if not rows:
        raise SourceError("none of the selected traces could be read back for the dataset",
                          "check that the traces still exist in the experiment, then rerun the dataset task")
    write_dataset(session, rows, skipped)
    kinds = Counter(r["metadata"]["case_type"] for r in rows)
    ui.say(f"Dataset: {len(rows)} rows ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})")
    return {"rows": len(rows), "skipped": len(skipped), "case_types": dict(kinds)}


def write_dataset(session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None) -> None:
    covered = sorted({f for r in rows for f in r["metadata"].get("findings", [])})
    write_json(session.dataset_json, {"rows": rows, "skipped": skipped or [], "findings_covered": covered})
    summary = f"{len(rows)} rows from production traces; findings covered: {len(covered)}."
    write_text(session.evaluation_dir / "eval_dataset.py", render_eval_dataset(summary))
