"""Initializer: read the experiment's traces, analyze them, write the analysis and the plan."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.analysis.agreement import fmt_rate
from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.querytypes import prewarm
from trace2eval.errors import SourceError
from trace2eval.sessions import suite
from trace2eval.sessions.files import add_run_note, drop_run_note, write_json
from trace2eval.sessions.refinement import REFINE, Refinement
from trace2eval.sessions.session import Session
from trace2eval.spark.location import is_uc_source
from trace2eval.analysis.stats import summary as distribution
from trace2eval.traces.reader import plan_shards, read_digests, scan_index
from trace2eval.traces.source import SkippedTraces, TraceQuery, open_client


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    client = open_client(config.tracking_uri, config.experiment_id)  # the suite evaluates in it, whatever the source
    extra: dict[str, Any] = {}
    if is_uc_source(config.source):
        from trace2eval.report.points import POINTS_FILE
        from trace2eval.spark.engine import analyze

        analysis, points = analyze(config)
        skipped = analysis.get("skipped_traces") or {}
        if skipped.get("count"):  # the engine warned already; the note reaches SUITE.md and the report
            add_run_note(session.state_dir, "skipped_traces", f"{skipped['count']} trace(s) could not be digested on "
                         "the cluster and were skipped; see state/analysis.json skipped_traces", traces=skipped["traces"])
        # The report's trace points, which it cannot read through MLflow for these traces.
        write_json(session.state_dir / POINTS_FILE, {"experiment_name": None, **points})
    else:
        analysis, extra = analyze_experiment(client, config, session)
        if analysis is None:
            return {**extra, REFINE: Refinement.not_wanted()}  # nothing new for an LLM to look at
    write_json(session.analysis_file, analysis)
    summary = analysis["trace_summary"]
    ui.say(f"Analyzed {summary['total_analyzed']} traces: {len(analysis['findings'])} findings, "
           f"{len(analysis['query_types'])} query types")
    meta = analysis.get("meta_evaluation")
    if meta:
        if meta.get("labelled", 0) == 0:
            ui.warn(meta["note"])
        else:
            combined = meta.get("combined") or {}
            ui.say(f"Against labels '{config.labels}' ({meta['labelled']} labelled traces): kept {len(meta['kept'])} "
                   f"code scorers, dropped {len(meta['dropped'])}; together recall {fmt_rate(combined.get('recall'))}, "
                   f"false-alarm rate {fmt_rate(combined.get('false_alarm_rate'))}")
            for what in meta.get("unmeasured", []):
                ui.warn(f"labels '{config.labels}' cannot measure {what}")
    update_plan(session, analysis)
    return {"traces": summary["total_analyzed"], "findings": len(analysis["findings"]),
            "query_types": len(analysis["query_types"]), **extra}


def analyze_experiment(client, config, session: Session | None = None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The analysis of the experiment's traces, read through MLflow, and extra summary fields.

    Returns (None, summary) when a nightly run finds no new traces: generation is skipped.
    """
    # Nightly runs start from the living suite and read only traces past its watermark.
    window = None
    if session is not None and suite.is_nightly(session):
        suite.seed_session(session)
        window = suite.trace_window(session)
    since_ms = window.since_ms if window else config.since_ms
    query = TraceQuery(config.experiment_id, config.filter_string, since_ms, config.max_traces)
    index = scan_index(client, query)
    if index.count == 0 and not (window and window.previous):
        what = f"experiment {config.experiment_id} has no traces"
        if query.mlflow_filter():
            what += f" matching {query.mlflow_filter()!r}"
        raise SourceError(what, "log traces from your agent first, or widen --filter / --since")
    plan = plan_shards(index, config.max_traces, seed=config.seed)
    if window is not None and plan.expected < index.count:
        ui.warn(f"more new traces ({index.count}) than --max-traces {config.max_traces}: a sample is analyzed and the "
                "watermark moves past the rest (raise max_traces to cover a night's traffic)")
    analyzer = Analyzer(seed=config.seed, label_name=config.labels)
    skipped = SkippedTraces()  # poison traces: left out with their reason, never the end of the run
    digests = read_digests(config.tracking_uri, query, plan, label_name=config.labels, skipped=skipped) if index.count else iter(())
    for n, digest in enumerate(ui.track(digests, "Reading traces", total=plan.expected)):
        if n == 0:
            prewarm()  # worker processes exist by now (no thread is forked along)
        if window is None or window.accepts(digest["trace_id"], digest.get("timestamp_ms", 0)):
            analyzer.add(digest)
    if skipped.count:
        ui.warn(skipped.message())
        if not analyzer.rows and not (window and window.previous):
            raise SourceError(f"none of the {skipped.count} traces could be read (e.g. {skipped.examples[0]['trace_id']}: "
                              f"{skipped.examples[0]['reason']})", "check the tracking store; the traces may be damaged")
    if session is not None and skipped.count:
        add_run_note(session.state_dir, "skipped_traces", skipped.message(), traces=skipped.summary()["traces"])
    elif session is not None:
        drop_run_note(session.state_dir, "skipped_traces")
    if window is not None:
        window_info = suite.save_window(session, window)
        if not analyzer.rows and window.previous is not None:
            suite.skip_generation(session, f"no new traces since the last successful run ({window_info['already_processed']} already in the suite)")
            ui.say("No new traces since the last successful run: validating the suite as it is")
            return None, {"traces": 0, "new_traces": 0, "findings": 0, "query_types": 0}
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
    if skipped.count:
        analysis["skipped_traces"] = skipped.summary()
    extra = {"new_traces": len(window.seen), "already_processed": window.skipped} if window else {}
    if skipped.count:
        extra["skipped_traces"] = skipped.count
    return analysis, extra


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
