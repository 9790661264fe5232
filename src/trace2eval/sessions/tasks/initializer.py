"""Initializer: read the experiment's traces, analyze them, write the analysis and the plan."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.querytypes import prewarm
from trace2eval.errors import SourceError
from trace2eval.sessions.files import write_json
from trace2eval.sessions.session import Session
from trace2eval.spark.location import is_uc_source
from trace2eval.analysis.stats import summary as distribution
from trace2eval.traces.reader import plan_shards, read_digests, scan_index
from trace2eval.traces.source import TraceQuery, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    client = open_client(config.tracking_uri, config.experiment_id)  # the suite evaluates in it, whatever the source
    if is_uc_source(config.source):
        from trace2eval.report.points import POINTS_FILE
        from trace2eval.spark.engine import analyze

        analysis, points = analyze(config)
        # The report's trace points, which it cannot read through MLflow for these traces.
        write_json(session.state_dir / POINTS_FILE, {"experiment_name": None, **points})
    else:
        analysis = analyze_experiment(client, config)
    write_json(session.analysis_file, analysis)
    summary = analysis["trace_summary"]
    ui.say(f"Analyzed {summary['total_analyzed']} traces: {len(analysis['findings'])} findings, "
           f"{len(analysis['query_types'])} query types")
    meta = analysis.get("meta_evaluation")
    if meta:
        if meta.get("labelled", 0) == 0:
            ui.warn(meta["note"])
        else:
            ui.say(f"Against labels '{config.labels}' ({meta['labelled']} labelled traces): kept {len(meta['kept'])} "
                   f"code scorers, dropped {len(meta['dropped'])}; together recall {meta['combined']['recall']:.2f}, "
                   f"false-alarm rate {meta['combined']['false_alarm_rate']:.2f}")
    update_plan(session, analysis)
    return {"traces": summary["total_analyzed"], "findings": len(analysis["findings"]),
            "query_types": len(analysis["query_types"])}


def analyze_experiment(client, config) -> dict[str, Any]:
    """The analysis of the experiment's traces, read through MLflow."""
    query = TraceQuery(config.experiment_id, config.filter_string, config.since_ms, config.max_traces)
    index = scan_index(client, query)
    if index.count == 0:
        what = f"experiment {config.experiment_id} has no traces"
        if query.mlflow_filter():
            what += f" matching {query.mlflow_filter()!r}"
        raise SourceError(what, "log traces from your agent first, or widen --filter / --since")
    plan = plan_shards(index, config.max_traces, seed=config.seed)
    prewarm()
    analyzer = Analyzer(seed=config.seed, label_name=config.labels)
    digests = read_digests(config.tracking_uri, query, plan, label_name=config.labels)
    for digest in ui.track(digests, "Reading traces", total=plan.expected):
        analyzer.add(digest)
    with ui.activity("Analyzing", unit="traces") as progress:
        progress.update(0, len(analyzer.rows))
        analysis = analyzer.finish(sample_note=plan.note)
        progress.update(len(analyzer.rows), len(analyzer.rows))
    analysis["population"] = {
        "traces": index.count, "by_status": dict(index.statuses), "latency_ms": distribution(index.durations),
        "tokens_per_trace": distribution(index.tokens) if index.tokens else {"count": 0},
        "note": "every matching trace, read without spans" + ("" if plan.expected >= index.count else
                                                              "; findings come from the sample"),
    }
    return analysis


def update_plan(session: Session, analysis: dict[str, Any]) -> None:
    """Describe the remaining tasks in terms of what the analysis found."""
    plan = session.plan()
    findings = analysis["findings"]
    code = [f for f in findings if f.get("scorer", "code") == "code" and f.get("kept", True)]
    plan.task("dataset").description = (
        f"Build the evaluation dataset from production traces: cover {len(findings)} findings, "
        f"{len(analysis['query_types'])} query types, the slowest traces and a random slice"
    )
    plan.task("scorers").description = (
        f"Create {len(code)} code scorers ({', '.join(f['id'] for f in code[:6])}"
        f"{'…' if len(code) > 6 else ''}) plus LLM judges"
    )
    session.save_plan(plan)
