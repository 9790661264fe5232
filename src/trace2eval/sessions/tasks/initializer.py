"""Initializer: read the experiment's traces, analyze them, write the analysis and the plan."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.analysis.analyze import Analyzer
from trace2eval.errors import SourceError
from trace2eval.sessions import suite
from trace2eval.sessions.files import write_json
from trace2eval.sessions.session import Session
from trace2eval.traces.source import TraceQuery, iter_digests, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    client = open_client(config.tracking_uri, config.experiment_id)
    # Nightly runs start from the living suite and read only traces past its watermark.
    window = None
    if suite.is_nightly(session):
        suite.seed_session(session)
        window = suite.trace_window(session)
    since_ms = window.since_ms if window else config.since_ms
    query = TraceQuery(config.experiment_id, config.filter_string, since_ms, config.max_traces)
    analyzer = Analyzer(seed=config.seed)
    for digest in ui.track(iter_digests(client, query), "Reading traces", total=config.max_traces):
        if window is None or window.accepts(digest["trace_id"], digest.get("timestamp_ms", 0)):
            analyzer.add(digest)
    if window is not None:
        window_info = suite.save_window(session, window)
        if not analyzer.rows and window.previous is not None:
            suite.skip_generation(session, f"no new traces since the last successful run ({window_info['already_processed']} already in the suite)")
            ui.say("No new traces since the last successful run: validating the suite as it is")
            return {"traces": 0, "new_traces": 0, "findings": 0, "query_types": 0}
    if not analyzer.rows:
        what = f"experiment {config.experiment_id} has no traces"
        if query.mlflow_filter():
            what += f" matching {query.mlflow_filter()!r}"
        raise SourceError(what, "log traces from your agent first, or widen --filter / --since")
    note = None
    if config.max_traces is not None and len(analyzer.rows) >= config.max_traces:
        note = f"the newest {len(analyzer.rows)} traces (--max-traces {config.max_traces})"
        if window is not None:
            ui.warn(f"more new traces than --max-traces {config.max_traces}: only the newest were read, and the "
                    "watermark moves past the rest (raise max_traces to cover a night's traffic)")
    analysis = analyzer.finish(sample_note=note)
    write_json(session.analysis_file, analysis)
    summary = analysis["trace_summary"]
    ui.say(f"Analyzed {summary['total_analyzed']} traces: {len(analysis['findings'])} findings, "
           f"{len(analysis['query_types'])} query types")
    update_plan(session, analysis)
    return {"traces": summary["total_analyzed"], "findings": len(analysis["findings"]),
            "query_types": len(analysis["query_types"]),
            **({"new_traces": len(window.seen), "already_processed": window.skipped} if window else {})}


def update_plan(session: Session, analysis: dict[str, Any]) -> None:
    """Describe the remaining tasks in terms of what the analysis found."""
    plan = session.plan()
    findings = analysis["findings"]
    plan.task("dataset").description = (
        f"Build the evaluation dataset from production traces: cover {len(findings)} findings, "
        f"{len(analysis['query_types'])} query types, the slowest traces and a random slice"
    )
    plan.task("scorers").description = (
        f"Create {len(findings)} code scorers ({', '.join(f['id'] for f in findings[:6])}"
        f"{'…' if len(findings) > 6 else ''}) plus LLM judges"
    )
    session.save_plan(plan)
