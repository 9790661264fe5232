"""`trace2eval run`, `task`, `resume`: create a session and run its tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.cli.options import (DEFAULTS, ExperimentId, Filter, FixAttempts, JudgeModel, Labels, Llm, LlmModel,
                                    MaxTraces, Out, Quiet, RequireLlm, Since, Source, TrackingUri, build_config)
from trace2eval.errors import ValidationFailed
from trace2eval.sessions import runner
from trace2eval.sessions.session import Session


def run(
    experiment_id: ExperimentId,
    tracking_uri: TrackingUri = None,
    out: Out = DEFAULTS["out"],
    llm: Llm = DEFAULTS["llm"],
    llm_model: LlmModel = DEFAULTS["llm_model"],
    judge_model: JudgeModel = None,
    max_traces: MaxTraces = DEFAULTS["max_traces"],
    filter: Filter = None,
    since: Since = None,
    labels: Labels = None,
    source: Source = DEFAULTS["source"],
    require_llm: RequireLlm = False,
    max_fix_attempts: FixAttempts = 3,
    quiet: Quiet = False,
) -> None:
    """Generate a validated evaluation suite from an experiment's traces (every task, in order).

    Example: trace2eval run --experiment-id 1 --tracking-uri sqlite:///mlflow.db

    With --source uc:<catalog>.<schema>[.<table_prefix>] the traces are read from Unity Catalog
    trace tables with Spark; the evaluation still runs against the experiment.

    Progress goes to stderr; the session folder is the last line of stdout. Exit 0 only when
    validation passed.
    """
    ui.set_quiet(quiet)
    config = build_config(experiment_id, tracking_uri, llm, llm_model, judge_model, max_traces, filter, since,
                          labels, require_llm, max_fix_attempts, source)
    session = runner.create_session(config, out)
    ui.say(f"Session {session.dir}")
    _finish(session, runner.run_all(session))


def task(
    name: Annotated[str, typer.Argument(help="initializer | dataset | scorers | script | validate | fix")],
    session: Annotated[Path, typer.Option("--session", "-s", help="Session folder (created by the initializer if missing).")],
    experiment_id: Annotated[Optional[str], typer.Option("--experiment-id", "-e", envvar=["TRACE2EVAL_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID"],
                                                         help="Needed only to create the session (initializer).")] = None,
    tracking_uri: TrackingUri = None,
    llm: Llm = DEFAULTS["llm"],
    llm_model: LlmModel = DEFAULTS["llm_model"],
    judge_model: JudgeModel = None,
    max_traces: MaxTraces = DEFAULTS["max_traces"],
    filter: Filter = None,
    since: Since = None,
    labels: Labels = None,
    source: Source = DEFAULTS["source"],
    force: Annotated[bool, typer.Option("--force", help="Run again even if completed.")] = False,
    quiet: Quiet = False,
) -> None:
    """Run one task of a session: what each Databricks notebook calls.

    Example: trace2eval task dataset --session sessions/2026-11-27_101500
    """
    ui.set_quiet(quiet)
    if not (session / "eval_tasks.json").exists() and name == "initializer" and experiment_id:
        config = build_config(experiment_id, tracking_uri, llm, llm_model, judge_model, max_traces, filter, since, labels,
                              source=source)
        s = runner.create_session(config, session.parent, session_id=session.name)
    else:
        s = Session.open(session)
    status = runner.run_task(s, name, force=force)
    print(f"{name}: {status}")
    print(s.dir)


def resume(
    session: Annotated[Path, typer.Argument(help="Session folder to continue.")],
    quiet: Quiet = False,
) -> None:
    """Continue a session from its first unfinished task; finished tasks are not redone.

    Example: trace2eval resume sessions/2026-11-27_101500
    """
    ui.set_quiet(quiet)
    s = Session.open(session)
    _finish(s, runner.resume(s))


def _finish(session: Session, passed: bool) -> None:
    validation = session.validation() or {}
    if passed:
        ui.say(f"Validation passed. Suite: {session.evaluation_dir}")
        if validation.get("gate_status") == "regressed":
            ui.warn("metrics fell below the gates in eval_gates.json (see state/validation_results.json)")
        print(session.dir)
        return
    print(session.dir)
    raise ValidationFailed("validation did not pass", f"see {session.validation_file}")
