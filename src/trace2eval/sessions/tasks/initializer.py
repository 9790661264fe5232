"""Initializer: read the experiment's traces, analyze them, write the analysis and the plan."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.analysis.analyze import Analyzer
from trace2eval.errors import SourceError
from trace2eval.llm import llm_step
from trace2eval.sessions.files import write_json
from trace2eval.sessions.session import Session
from trace2eval.traces.source import TraceQuery, iter_digests, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    client = open_client(config.tracking_uri, config.experiment_id)
    query = TraceQuery(config.experiment_id, config.filter_string, config.since_ms, config.max_traces)
    analyzer = Analyzer(seed=config.seed)
    for digest in ui.track(iter_digests(client, query), "Reading traces", total=config.max_traces):
        analyzer.add(digest)
    if not analyzer.rows:
        what = f"experiment {config.experiment_id} has no traces"
        if query.mlflow_filter():
            what += f" matching {query.mlflow_filter()!r}"
        raise SourceError(what, "log traces from your agent first, or widen --filter / --since")
    note = None
    if config.max_traces is not None and len(analyzer.rows) >= config.max_traces:
        note = f"the newest {len(analyzer.rows)} traces (--max-traces {config.max_traces})"
    analysis = analyzer.finish(sample_note=note)
    write_json(session.analysis_file, analysis)
    summary = analysis["trace_summary"]
    ui.say(f"Analyzed {summary['total_analyzed']} traces: {len(analysis['findings'])} findings, "
           f"{len(analysis['query_types'])} query types")
    update_plan(session, analysis)
    return {"traces": summary["total_analyzed"], "findings": len(analysis["findings"]),
            "query_types": len(analysis["query_types"]), **llm_step(session, "initializer")}


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
