"""Initializer: read the experiment's traces, analyze them, write the analysis and the plan."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.analysis.agreement import fmt_rate
from trace2eval.analysis.labels import signal_text
from trace2eval.sessions import suite
from trace2eval.sessions.files import add_run_note, drop_run_note, write_json
from trace2eval.sessions.refinement import REFINE, Refinement
from trace2eval.sessions.session import Session
from trace2eval.traces.source import open_client
from trace2eval.traces.sources import trace_source


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    client = open_client(config.tracking_uri, config.experiment_id)  # the suite evaluates in it, whatever the source
    source = trace_source(config, client)
    # Nightly runs start from the living suite and read only traces past its watermark.
    window = None
    if suite.is_nightly(session):
        suite.seed_session(session)
        window = suite.trace_window(session)
    result = source.analyze(window)
    if result.skipped_note:
        add_run_note(session.state_dir, "skipped_traces", result.skipped_note, traces=result.skipped_traces)
    else:
        drop_run_note(session.state_dir, "skipped_traces")
    if result.points is not None:
        from trace2eval.report.points import POINTS_FILE

        # The report's trace points, which it cannot read through MLflow for these traces.
        write_json(session.state_dir / POINTS_FILE, {"experiment_name": None, **result.points})
    extra = dict(result.extra)
    window_info: dict[str, Any] = {}
    if window is not None:
        window_info = suite.save_window(session, window)
        extra = {"new_traces": len(window.seen), "already_processed": window.skipped, **extra}
    analysis = result.analysis
    if analysis is None:  # a nightly window with nothing new since the last successful run
        suite.skip_generation(
            session,
            f"no new traces since the last successful run ({window_info.get('already_processed', 0)} already in the suite)",
        )
        ui.say("No new traces since the last successful run: validating the suite as it is")
        return {
            "traces": 0,
            "new_traces": 0,
            "findings": 0,
            "query_types": 0,
            REFINE: Refinement.not_wanted(),
        }  # nothing new for an LLM to look at
    write_json(session.analysis_file, analysis)
    summary = analysis["trace_summary"]
    guards = analysis.get("guards") or []
    ui.say(
        f"Analyzed {summary['total_analyzed']} traces: {len(analysis['findings'])} findings, "
        f"{len(analysis['query_types'])} query types"
        + (f"; {len(guards)} failure checks no trace fails yet, kept as guards" if guards else "")
    )
    meta = analysis.get("meta_evaluation")
    if meta:
        if meta.get("labelled", 0) == 0:
            ui.warn(meta["note"])
        else:
            combined = meta.get("combined") or {}
            ui.say(
                f"Against labels '{config.labels}' ({meta['labelled']} labelled traces): kept {len(meta['kept'])} "
                f"code scorers, dropped {len(meta['dropped'])}; together recall {fmt_rate(combined.get('recall'))}, "
                f"false-alarm rate {fmt_rate(combined.get('false_alarm_rate'))}"
            )
            learned = meta.get("learned") or {}
            cv = learned.get("cross_validation")
            if cv:
                ui.say(
                    f"Cross-validated on the labelled traces ({cv['folds']} folds): flags {cv['flagged_bad']} of "
                    f"{cv['bad']} bad (95% {cv['recall_95']}) and {cv['flagged_good']} of {cv['good']} good "
                    f"(95% {cv['false_alarm_95']})"
                )
            if learned.get("signals"):
                ui.say(
                    f"Labels '{config.labels}' add thresholds on the agent's own counts, scorer labelled_signals: "
                    + "; ".join(map(signal_text, learned["signals"]))
                )
            if learned.get("reason"):
                ui.say(f"Labels '{config.labels}': {learned['reason']}")
            for what in meta.get("unmeasured", []):
                ui.warn(f"labels '{config.labels}' cannot measure {what}")
    update_plan(session, analysis)
    return {
        "traces": summary["total_analyzed"],
        "findings": len(analysis["findings"]),
        "guards": len(analysis.get("guards") or []),
        "query_types": len(analysis["query_types"]),
        **extra,
    }


def update_plan(session: Session, analysis: dict[str, Any]) -> None:
    """Describe the remaining tasks in terms of what the analysis found."""
    plan = session.plan()
    findings = analysis["findings"]
    code = [f for f in findings if f.get("scorer", "code") == "code" and f.get("kept", True)]
    plan.task("dataset").description = (
        f"Build the evaluation dataset from production traces: cover {len(findings)} findings, "
        f"{len(analysis['query_types'])} query types, the slowest traces and a random slice"
    )
    guards = analysis.get("guards") or []
    plan.task("scorers").description = (
        f"Create {len(code)} code scorers ({', '.join(f['id'] for f in code[:6])}"
        f"{'…' if len(code) > 6 else ''})" + (f", {len(guards)} guards" if guards else "") + " plus LLM judges"
    )
    session.save_plan(plan)
