"""Create sessions and run their tasks: one task at a time, state in files, resumable anywhere.

`run_task` is what a CLI call or a Databricks notebook runs: it locks the session, checks the
task's prerequisites, marks it running, does it, and records the outcome in `eval_tasks.json`.
Nothing in memory carries over between tasks.

Doing a task is its deterministic step (`sessions/tasks/<name>.py`), then, when an LLM is
configured and the task wants it (see `refinement.py`), the LLM refinement (`llm.refine`). The
runner is what joins the two: tasks never import the LLM layer, and the LLM layer reaches the
validate task only through the `revalidate` callable the runner hands it.
"""

from __future__ import annotations

import importlib
import time
import traceback
from datetime import datetime, timezone
from collections.abc import Callable
from pathlib import Path

from trace2eval import ui
from trace2eval.config import SessionConfig
from trace2eval.errors import SessionError, Trace2EvalError
from trace2eval.sessions import suite
from trace2eval.sessions.files import write_json
from trace2eval.sessions.lock import SessionLock
from trace2eval.sessions.plan import TASK, TASK_ORDER, TaskPlan, now
from trace2eval.sessions.refinement import REFINE, Refinement
from trace2eval.sessions.session import Session
from trace2eval.state.validation import Revalidate, ValidatedBy, ValidationOutcome


def new_session_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d_%H%M%S")


def create_session(config: SessionConfig, out_dir: str | Path, session_id: str | None = None) -> Session:
    """Make `<out>/<session-id>/` with its config and a fresh plan."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".trace2eval-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SessionError(
            f"cannot write to output folder {out} ({exc.strerror or exc})", "pick a writable --out folder"
        ) from None
    base = session_id or new_session_id()
    sid, n = base, 1
    while (out / sid).exists() and session_id is None:
        n += 1
        sid = f"{base}-{n}"
    session = Session((out / sid).resolve())
    if session.tasks_file.exists():
        raise SessionError(f"session {session.dir} already exists", f"resume it with `trace2eval resume {session.dir}`")
    session.state_dir.mkdir(parents=True, exist_ok=True)
    session.evaluation_dir.mkdir(parents=True, exist_ok=True)
    write_json(session.config_file, config.model_dump(mode="json"))
    engine = "deterministic" if config.llm == "none" else f"deterministic+llm:{config.llm}"
    session.save_plan(TaskPlan.new(sid, config.experiment_id, engine))
    return session


def _task_module(name: str):
    return importlib.import_module(f"trace2eval.sessions.tasks.{name}")


def run_task(session: Session, name: str, force: bool = False) -> str:
    """Run one task; returns its final status. Raises Trace2EvalError on failure."""
    if name not in TASK_ORDER:
        raise SessionError(f"unknown task {name!r}", f"tasks are: {', '.join(TASK_ORDER)}")
    with SessionLock(session.dir):
        plan = session.plan()
        record = plan.task(name)
        if record.status in ("completed", "skipped") and not force:
            if plan.finished and not _published(session):
                # The run that finished this task died while writing the report (a retried job task lands here).
                ui.say(
                    f"Task {name} already {record.status}; finishing the report and the MLflow run it left unfinished"
                )
                _publish_when_done(session, failed=False)
            else:
                ui.say(f"Task {name} already {record.status}; nothing to do")
            return record.status
        task = TASK[name]
        for need in task.needs:
            if plan.task(need).status not in ("completed", "skipped"):
                raise SessionError(
                    f"task {name!r} needs {need!r} to be completed first (it is {plan.task(need).status})",
                    f"run `trace2eval task {need} --session {session.dir}` or `trace2eval resume {session.dir}`",
                )
        if task.after_failed_validation:
            validation = session.validation()
            if validation and validation.passed:
                _finish(session, name, "skipped", {"reason": "validation passed"}, None, time.monotonic())
                _publish_when_done(session, failed=False)
                return "skipped"

        record.status, record.attempts, record.started_at = "running", record.attempts + 1, now()
        record.finished_at = record.error = None
        session.save_plan(plan)
        start = time.monotonic()
        ui.say(f"[{name}] {record.description}")
        try:
            module = _task_module(name)
            summary = _refine(session, name, module, module.run(session) or {})
            if task.validates:
                summary.update(_publish_if_passed(session))
        except Trace2EvalError as exc:
            _finish(session, name, "failed", {}, str(exc), start)
            _publish_when_done(session, failed=True)
            raise
        except KeyboardInterrupt:
            _finish(session, name, "failed", {}, "interrupted", start)
            raise
        except Exception as exc:  # a bug: keep the traceback in the plan for the report
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            _finish(session, name, "failed", {"traceback": traceback.format_exc()[-3000:]}, detail, start)
            _publish_when_done(session, failed=True)
            raise
        _finish(session, name, "completed", summary or {}, None, start)
        if task.validates:
            _skip_repairs_if_passed(session)
        _publish_when_done(session, failed=False)
        return "completed"


def _refine(session: Session, name: str, module, summary: dict) -> dict:
    """The LLM step after a task's deterministic step; returns the task's final summary.

    Raises the deterministic step's failure unless the LLM step ran and the task accepted its repair."""
    request = summary.pop(REFINE, None) or Refinement()
    llm: dict = {}
    if request.wanted and session.config().llm != "none":
        from trace2eval.llm.refine import refine  # the LLM layer loads only when an LLM is configured

        outcome = refine(
            session, name, failure=str(request.failure) if request.failure else None, revalidate=_revalidate(session)
        )
        if outcome is not None:
            llm = {**outcome.summary(), **({"llm_why": request.why} if request.why else {})}
    if llm and hasattr(module, "after_llm"):
        return module.after_llm(session, {**summary, **llm}, request)
    if request.failure is not None:
        raise request.failure
    return {**summary, **llm}


def _revalidate(session: Session) -> Revalidate:
    """Validation as a callable, for the LLM fix session (which must not import the validate task)."""

    def revalidate(by: ValidatedBy, attempt: int) -> ValidationOutcome:
        _task_module("validate").run(session, attempt=attempt, by=by)
        return ValidationOutcome.of(session)

    return revalidate


def _skip_repairs_if_passed(session: Session) -> None:
    """Validation passed: the tasks that run only after a failed one (fix) will not run (a job
    excludes them), so the session is finished now."""
    validation = session.validation()
    plan = session.plan()
    if not (validation and validation.passed):
        return
    for task in (t for t in plan.tasks if TASK[t.name].after_failed_validation and t.status == "pending"):
        task.status, task.summary, task.finished_at = "skipped", {"reason": "validation passed"}, now()
    session.save_plan(plan)


def _publish_if_passed(session: Session) -> dict:
    """Nightly runs: once the suite validates, it goes back to the living suite (never before)."""
    validation = session.validation()
    if suite.is_nightly(session) and validation and validation.passed:
        return {"published": suite.publish(session)}
    return {}


def _publish_when_done(session: Session, failed: bool) -> None:
    """When the session ends (every task done, or one failed): write the report, log the
    generation run and register the dataset. A problem here is a warning, never the task's result.

    The session counts as finished only once this ran to its end (see report/publish.py), so a
    crash in here is finished by `resume` or by the retried task."""
    if not failed and not session.plan().finished:
        return
    from trace2eval.report import publish

    try:
        with ui.activity("Writing the report and logging to MLflow"):
            result = publish(session)
    except Exception as exc:  # publishing must not turn a finished session into a crash
        ui.warn(f"report and MLflow logging failed: {type(exc).__name__}: {exc}")
        return
    for problem in result.problems:
        ui.warn(problem)
    if result.report:
        ui.say(f"Report: {result.report.html}")


def _finish(session: Session, name: str, status: str, summary: dict, error: str | None, start: float) -> None:
    plan = session.plan()
    record = plan.task(name)
    record.status = status
    record.finished_at = now()
    record.duration_s = round(time.monotonic() - start, 2)
    record.error = error
    record.summary = summary
    session.save_plan(plan)


def run_all(session: Session, after_each: Callable[[], None] | None = None) -> bool:
    """Run every unfinished task in order. True when validation passed.

    `after_each` runs after every task, failed or not (e.g. pushing a Volume mirror).
    """
    while (record := session.plan().next_pending()) is not None:
        try:
            run_task(session, record.name)
        finally:
            if after_each is not None:
                after_each()
    validation = session.validation()
    return bool(validation and validation.passed)


def _published(session: Session) -> bool:
    from trace2eval.report.publish import is_complete

    return is_complete(session)


def resume(session: Session, after_each: Callable[[], None] | None = None) -> bool:
    plan = session.plan()
    if plan.finished:
        if _published(session):
            ui.say(f"Session {session.dir} is already finished; nothing to do")
        else:
            ui.say(
                f"Session {session.dir}: every task is done but the report was not finished (interrupted); finishing it"
            )
            with SessionLock(session.dir):
                _publish_when_done(session, failed=False)
            if after_each is not None:
                after_each()
        validation = session.validation()
        return bool(validation and validation.passed)
    ui.say(f"Resuming {session.dir} at task {plan.next_pending().name}")
    return run_all(session, after_each)
