"""`trace2eval run`, `task`, `resume`: create a session and run its tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.config import SessionConfig
from trace2eval.cli.options import (
    DEFAULTS,
    ExperimentId,
    Filter,
    FixAttempts,
    JudgeModel,
    Labels,
    Llm,
    LlmMaxTurns,
    LlmModel,
    LlmRunTokens,
    LlmSessionSeconds,
    LlmSessionTokens,
    LlmTimeout,
    LlmTraceExperiment,
    MaxTraces,
    Out,
    Quiet,
    RequireLlm,
    Since,
    Source,
    SuiteDir,
    TrackingUri,
    llm_settings,
)
from trace2eval.errors import ValidationFailed
from trace2eval.sessions import runner, workdirs
from trace2eval.sessions.folders import is_volume_path
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
    suite: SuiteDir = None,
    llm_max_turns: LlmMaxTurns = DEFAULTS["llm_max_turns"],
    llm_session_tokens: LlmSessionTokens = DEFAULTS["llm_session_tokens"],
    llm_run_tokens: LlmRunTokens = DEFAULTS["llm_run_tokens"],
    llm_timeout: LlmTimeout = DEFAULTS["llm_timeout_s"],
    llm_session_seconds: LlmSessionSeconds = DEFAULTS["llm_session_seconds"],
    llm_trace_experiment: LlmTraceExperiment = DEFAULTS["llm_trace_experiment"],
    quiet: Quiet = False,
) -> None:
    """Generate a validated evaluation suite from an experiment's traces (every task, in order).

    Example: trace2eval run --experiment-id 1 --tracking-uri sqlite:///mlflow.db

    With --source uc:<catalog>.<schema>[.<table_prefix>] the traces are read from Unity Catalog
    trace tables with Spark; the evaluation still runs against the experiment.

    With --llm databricks (or anthropic) Claude refines each task's output after the deterministic
    engine wrote it; if the model is unavailable the deterministic suite stands.

    Progress goes to stderr; the session folder is the last line of stdout. Exit 0 only when
    validation passed. `--out /Volumes/<catalog>/<schema>/<volume>/sessions` works from a laptop
    (Files API); `--suite DIR` makes it a nightly-style run that grows the suite in DIR.
    """
    ui.set_quiet(quiet)
    config = SessionConfig.from_inputs(
        experiment_id,
        tracking_uri,
        llm=llm,
        llm_model=llm_model,
        judge_model=judge_model,
        max_traces=max_traces,
        filter_string=filter,
        since=since,
        labels=labels,
        require_llm=require_llm,
        max_fix_attempts=max_fix_attempts,
        source=source,
        **llm_settings(
            llm_max_turns, llm_session_tokens, llm_run_tokens, llm_timeout, llm_session_seconds, llm_trace_experiment
        ),
    )
    if suite:
        config = config.model_copy(update={"suite_dir": suite_location(suite)})
    with workdirs.output_workdir(out) as (parent, attach):
        session = runner.create_session(config, parent)
        sync = attach(session.dir)
        shown = _shown(out, session)
        ui.say(f"Session {shown}")
        _finish(session, runner.run_all(session, after_each=sync), shown)


def task(
    name: Annotated[str, typer.Argument(help="initializer | dataset | scorers | script | validate | fix")],
    session: Annotated[
        Path, typer.Option("--session", "-s", help="Session folder (created by the initializer if missing).")
    ],
    experiment_id: Annotated[
        Optional[str],
        typer.Option(
            "--experiment-id",
            "-e",
            envvar=["TRACE2EVAL_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID"],
            help="Needed only to create the session (initializer).",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    llm: Llm = DEFAULTS["llm"],
    llm_model: LlmModel = DEFAULTS["llm_model"],
    judge_model: JudgeModel = None,
    max_traces: MaxTraces = DEFAULTS["max_traces"],
    filter: Filter = None,
    since: Since = None,
    labels: Labels = None,
    source: Source = DEFAULTS["source"],
    require_llm: RequireLlm = False,
    llm_max_turns: LlmMaxTurns = DEFAULTS["llm_max_turns"],
    llm_session_tokens: LlmSessionTokens = DEFAULTS["llm_session_tokens"],
    llm_run_tokens: LlmRunTokens = DEFAULTS["llm_run_tokens"],
    llm_timeout: LlmTimeout = DEFAULTS["llm_timeout_s"],
    llm_session_seconds: LlmSessionSeconds = DEFAULTS["llm_session_seconds"],
    llm_trace_experiment: LlmTraceExperiment = DEFAULTS["llm_trace_experiment"],
    force: Annotated[bool, typer.Option("--force", help="Run again even if completed.")] = False,
    quiet: Quiet = False,
) -> None:
    """Run one task of a session: what each Databricks notebook calls.

    Example: trace2eval task dataset --session sessions/2026-11-27_101500

    Settings (--llm, budgets, ...) are read when the initializer creates the session; later tasks
    use the session's state/config.json.
    """
    ui.set_quiet(quiet)
    creating = name == "initializer" and experiment_id
    with workdirs.session_workdir(session, must_exist=not creating) as (local, sync):
        if creating and not (local / "eval_tasks.json").exists():
            config = SessionConfig.from_inputs(
                experiment_id,
                tracking_uri,
                llm=llm,
                llm_model=llm_model,
                judge_model=judge_model,
                max_traces=max_traces,
                filter_string=filter,
                since=since,
                labels=labels,
                require_llm=require_llm,
                source=source,
                **llm_settings(
                    llm_max_turns,
                    llm_session_tokens,
                    llm_run_tokens,
                    llm_timeout,
                    llm_session_seconds,
                    llm_trace_experiment,
                ),
            )
            s = runner.create_session(config, local.parent, session_id=local.name)
        else:
            s = Session.open(local)
        try:
            status = runner.run_task(s, name, force=force)
        finally:
            sync()
    print(f"{name}: {status}")
    print(session if is_volume_path(session) else s.dir)


def resume(
    session: Annotated[Path, typer.Argument(help="Session folder to continue.")],
    quiet: Quiet = False,
) -> None:
    """Continue a session from its first unfinished task; finished tasks are not redone.

    Example: trace2eval resume sessions/2026-11-27_101500
    """
    ui.set_quiet(quiet)
    with workdirs.session_workdir(session) as (local, sync):
        s = Session.open(local)
        _finish(s, runner.resume(s, after_each=sync), str(session) if is_volume_path(session) else None)


def suite_location(suite: str) -> str:
    """A Volume path stays as it is; a local folder becomes absolute (tasks may run elsewhere)."""
    return suite if is_volume_path(suite) else str(Path(suite).resolve())


def _shown(out: Path, session: Session) -> str:
    """The path a user should see: the Volume path, not the local mirror of it."""
    return f"{str(out).rstrip('/')}/{session.id}" if is_volume_path(out) else str(session.dir)


def _finish(session: Session, passed: bool, shown: str | None = None) -> None:
    validation = session.validation()
    where = shown or str(session.dir)
    if passed:
        ui.say(f"Validation passed. Suite: {where}/evaluation")
        if validation and validation.gate_status == "regressed":
            ui.warn("metrics fell below the gates in eval_gates.json (see state/validation_results.json)")
        print(where)
        return
    print(where)
    raise ValidationFailed("validation did not pass", f"see {where}/state/validation_results.json")
