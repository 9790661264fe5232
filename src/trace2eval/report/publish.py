"""When a session finishes (pass or fail): the report, the generation run, the registered dataset.

Publishing never changes a session's outcome: each step that fails is recorded in
`state/mlflow_publish.json` and shown as a warning, and the report is written regardless.

A session is finished only when its tasks are done *and* this publishing ran to its end: the last
thing `publish` writes is `completed` (with a fingerprint of the task plan it published), after the
report and after the generation run was ended. A run killed in between (`kill -9`, a dead driver)
leaves no such mark, so `resume` (or a retried last task) publishes again: the same generation run
is found by its id and ended, and the report is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from trace2eval.errors import Trace2EvalError
from trace2eval.report.context import PUBLISH_FILE
from trace2eval.report.render import ReportFiles, write_report
from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.plan import now
from trace2eval.sessions.session import Session
from trace2eval.traces.source import check_reachable


@dataclass
class PublishResult:
    report: ReportFiles | None
    run_id: str | None
    dataset: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def _state(session: Session) -> dict[str, Any]:
    path = session.state_dir / PUBLISH_FILE
    try:
        data = read_json(path) if path.exists() else {}
        return data if isinstance(data, dict) else {}
    except Exception:
        return {}


def plan_fingerprint(session: Session) -> str:
    """What the task plan looked like when published: any task run since changes it."""
    tasks = [(t.name, t.status, t.attempts, t.finished_at) for t in session.plan().tasks]
    return hashlib.sha256(json.dumps(tasks).encode()).hexdigest()[:16]


def is_complete(session: Session) -> bool:
    """True when the session's current outcome was published to its end (report written, run ended)."""
    completed = _state(session).get("completed")
    return isinstance(completed, dict) and completed.get("plan") == plan_fingerprint(session)


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, Trace2EvalError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:400]


def publish(session: Session, ui_url: str | None = None, log_to_mlflow: bool = True) -> PublishResult:
    """Write the report; with log_to_mlflow, also log the generation run and register the dataset."""
    from trace2eval.report import dataset_registry, generation_run

    state = _state(session)
    problems: list[str] = []
    run_id = None
    logging_requested = log_to_mlflow
    if logging_requested and state.pop("completed", None) is not None:
        write_json(session.state_dir / PUBLISH_FILE, state)  # a crash from here on leaves it unfinished
    # Before the analysis exists the experiment may not even be readable (the initializer failed
    # on it): there is nothing to log yet, and the task's own error already says why.
    if log_to_mlflow and session.analysis_file.exists():
        try:
            check_reachable(session.config().tracking_uri, timeout_s=5.0)
        except Exception as exc:
            problems.append(f"nothing logged to MLflow: {_reason(exc)}")
            log_to_mlflow = False
    else:
        log_to_mlflow = False
    if log_to_mlflow:
        previous_run = (state.get("generation_run") or {}).get("run_id")
        try:
            run_id = generation_run.find_or_create_run(session, previous_run)
            state["generation_run"] = {"run_id": run_id, "logged_at": now()}
        except Exception as exc:
            problems.append(f"generation run not logged: {_reason(exc)}")
            state["generation_run"] = {"error": _reason(exc)}
        if session.dataset_json.exists():
            try:
                state["dataset"] = {
                    **dataset_registry.register_dataset(session, state.get("dataset")),
                    "merged_at": now(),
                }
            except Exception as exc:
                problems.append(f"dataset not registered in MLflow: {_reason(exc)}")
                state["dataset"] = {
                    **{k: v for k, v in (state.get("dataset") or {}).items() if k in ("name", "dataset_id")},
                    "skipped": _reason(exc),
                }
        write_json(session.state_dir / PUBLISH_FILE, state)

    report = None
    try:
        report = write_report(session, ui_url=ui_url)
    except Exception as exc:  # the report must never hide the session's own result
        problems.append(f"report not written: {_reason(exc)}")

    if run_id:
        try:
            generation_run.log_generation_run(session, run_id, report.html if report else None)
            state["generation_run"]["ended_at"] = now()
        except Exception as exc:
            problems.append(f"generation run incomplete: {_reason(exc)}")
            state["generation_run"]["error"] = _reason(exc)
    if logging_requested:
        # Last: only now is the session's outcome fully published (problems above are recorded, not retried).
        state["completed"] = {"at": now(), "plan": plan_fingerprint(session), "problems": problems}
        write_json(session.state_dir / PUBLISH_FILE, state)
    return PublishResult(report, run_id, state.get("dataset") or {}, problems)
