"""What every notebook of the bundle calls: one session task, run as one job task.

A notebook reads its widgets into a dict, calls `run_job_task(<task>, params, dbutils)` and
publishes the returned task values; nothing else. This is the same `runner.run_task` the CLI's
`trace2eval task NAME --session DIR` calls, on the session folder `<volume>/sessions/<run_id>/`
(created by the initializer), with the living suite in `<volume>/suite/`.

Credentials never pass through parameters: inside Databricks the notebook's own identity is used
(notebook-native auth), and API keys for other providers come from a secret scope.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trace2eval import ui
from trace2eval.env import apply_safe_mlflow_env
from trace2eval.errors import Trace2EvalError
from trace2eval.sessions.plan import TASK, TASK_ORDER

# Job-level parameters (pushed down to every notebook as widgets) and the task-level one.
JOB_PARAMETERS = (
    "experiment_id",
    "tracking_uri",
    "volume",
    "llm",
    "llm_model",
    "judge_model",
    "trace_source",
    "max_traces",
    "since",
    "max_fix_attempts",
    "max_suite_rows",
    "secret_scope",
    "monitor_sample_rate",
    "fail_on_monitored_regression",
)
TASK_PARAMETERS = ("run_id",)
PARAMETERS = JOB_PARAMETERS + TASK_PARAMETERS
# The regression job (resources/trace2eval_regression.job.yml): its job parameters, then the task's.
REGRESSION_JOB_PARAMETERS = ("agent", "experiment_id", "tracking_uri", "volume", "judge_model", "secret_scope")
REGRESSION_PARAMETERS = REGRESSION_JOB_PARAMETERS + TASK_PARAMETERS
TASKS = tuple(TASK_ORDER)
# The nightly job's last task: not a session task, it keeps the production monitors in sync with the suite.
MONITOR_TASK = "monitor"
# Keys read from the secret scope, and the environment variable each one becomes (process only).
SECRET_KEYS = {"anthropic-api-key": "ANTHROPIC_API_KEY", "openai-api-key": "OPENAI_API_KEY"}


class JobParameterError(Trace2EvalError):
    """A job parameter is missing or unusable."""


@dataclass(frozen=True)
class JobTaskSettings:
    experiment_id: str
    tracking_uri: str
    volume: str
    run_id: str
    llm: str = "none"
    llm_model: str = ""
    judge_model: str | None = None
    trace_source: str = "mlflow"
    max_traces: int = 0
    since: str | None = None
    max_fix_attempts: int = 3
    max_suite_rows: int = 300
    secret_scope: str | None = None
    monitor_sample_rate: float = 0.0
    fail_on_monitored_regression: bool = False

    @property
    def session_dir(self) -> str:
        return f"{self.volume.rstrip('/')}/sessions/{self.run_id}"

    @property
    def suite_dir(self) -> str:
        return f"{self.volume.rstrip('/')}/suite"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "JobTaskSettings":
        def text(name: str, required: bool = False) -> str:
            value = str(params.get(name) if params.get(name) is not None else "").strip()
            if required and not value:
                raise JobParameterError(
                    f"job parameter {name!r} is empty",
                    f"set it: `databricks bundle deploy --var {name}=...` or run the job with --params {name}=...",
                )
            return value

        def number(name: str, default: int) -> int:
            value = text(name)
            try:
                return int(value) if value else default
            except ValueError:
                raise JobParameterError(f"job parameter {name!r} must be a whole number, got {value!r}") from None

        def rate(name: str) -> float:
            value = text(name)
            try:
                number = float(value) if value else 0.0
            except ValueError:
                number = -1.0
            if not 0 <= number <= 1:
                raise JobParameterError(
                    f"job parameter {name!r} must be a share of traces from 0 (off) to 1, got {value!r}",
                    f"e.g. --var {name}=0.1 to score one new trace in ten",
                )
            return number

        def flag(name: str) -> bool:
            value = text(name).lower()
            if value not in ("", "true", "false", "1", "0", "yes", "no"):
                raise JobParameterError(f"job parameter {name!r} must be true or false, got {value!r}")
            return value in ("true", "1", "yes")

        volume = text("volume", required=True)
        if volume.startswith("/Volumes/") and len([p for p in volume.split("/") if p]) < 4:
            raise JobParameterError(
                f"volume {volume!r} is not a Volume path",
                "use /Volumes/<catalog>/<schema>/<volume> (create it with CREATE VOLUME first)",
            )
        return cls(
            experiment_id=text("experiment_id", required=True),
            tracking_uri=text("tracking_uri") or "databricks",
            volume=volume,
            run_id=text("run_id", required=True),
            llm=text("llm") or "none",
            llm_model=text("llm_model"),
            judge_model=text("judge_model") or None,
            trace_source=text("trace_source") or "mlflow",
            max_traces=number("max_traces", 0),
            since=text("since") or None,
            max_fix_attempts=number("max_fix_attempts", 3),
            max_suite_rows=number("max_suite_rows", 300),
            secret_scope=text("secret_scope") or None,
            monitor_sample_rate=rate("monitor_sample_rate"),
            fail_on_monitored_regression=flag("fail_on_monitored_regression"),
        )


def run_job_task(task: str, params: Mapping[str, Any], dbutils: Any = None) -> dict[str, Any]:
    """Run session task `task` for this job run and return the task values to publish."""
    from trace2eval.sessions import runner
    from trace2eval.sessions.lock import job_run
    from trace2eval.sessions.session import Session
    from trace2eval.sessions.workdirs import session_workdir

    if task not in TASKS:
        raise JobParameterError(f"unknown task {task!r}", f"tasks are: {', '.join(TASKS)}")
    settings = JobTaskSettings.from_params(params)
    apply_safe_mlflow_env()
    if dbutils is not None:
        _use_notebook_identity(dbutils)
        _load_secrets(dbutils, settings.secret_scope)
    ui.say(f"[{task}] session {settings.session_dir}")
    # Locks taken from here on belong to this job run: a retry of this task (say, on a new cluster
    # after the driver died) takes its own run's locks over at once instead of waiting them out.
    with (
        job_run(settings.run_id),
        session_workdir(settings.session_dir, must_exist=task != "initializer") as (local_dir, sync),
    ):
        try:
            if task == "initializer" and not (local_dir / "eval_tasks.json").exists():
                session = runner.create_session(session_config(settings), local_dir.parent, session_id=local_dir.name)
            else:
                session = Session.open(local_dir)
            status = runner.run_task(session, task)
        finally:
            sync()
        return task_values(session, task, status, settings)


class CandidateRegressed(Trace2EvalError):
    """The candidate regressed, or could not be evaluated: the task fails so the run's alerts fire."""


def run_regression(params: Mapping[str, Any], dbutils: Any = None) -> dict[str, Any]:
    """The regression job's one task: the living suite's run_eval.py --agent against a candidate.

    Returns the task values when no scorer regressed; raises CandidateRegressed otherwise."""
    from trace2eval.sessions.candidate import NO_REGRESSION, REGRESSION, run_candidate, suite_folder, summary_line
    from trace2eval.sessions.workdirs import session_workdir

    agent = str(params.get("agent") or "").strip()
    if not agent:
        raise JobParameterError(
            "job parameter 'agent' is empty",
            "run the job with --params agent=endpoints:/<candidate endpoint> (or apps:/NAME, or an https:// URL)",
        )
    settings = JobTaskSettings.from_params({**params, "run_id": params.get("run_id") or "regression"})
    apply_safe_mlflow_env()
    if dbutils is not None:
        _use_notebook_identity(dbutils)
        _load_secrets(dbutils, settings.secret_scope)
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_EXPERIMENT_ID": settings.experiment_id}
    ui.say(f"[regression] candidate {agent} on the living suite {settings.suite_dir}")
    with session_workdir(settings.suite_dir, read_only=True) as (local_dir, _sync):
        evaluation, _ = suite_folder(local_dir)
        code, report, _ = run_candidate(evaluation, agent, env, settings.judge_model)
    line = summary_line(code, report)
    candidate = report.get("candidate") or {}
    if code != NO_REGRESSION:
        what = "regressed" if code == REGRESSION else "could not be evaluated"
        raise CandidateRegressed(
            f"candidate {agent} {what}: {line} (candidate run {candidate.get('run_id') or report.get('run_id') or '-'})",
            "see the rows that flipped in the task's output; fix the candidate, or accept the change deliberately",
        )
    return {
        "status": "passed",
        "agent": agent[:200],
        "summary": line[:500],
        "mlflow_run_id": str(candidate.get("run_id") or report.get("run_id") or ""),
        "baseline_run_id": str(candidate.get("baseline_run") or ""),
        "errors": int(candidate.get("errors") or 0),
    }


class MonitoredRegression(Trace2EvalError):
    """A monitored scorer's production pass rate fell beyond the gates' tolerance: the task fails so the alerts fire."""


def run_monitor(params: Mapping[str, Any], dbutils: Any = None, now_ms: int | None = None) -> dict[str, Any]:
    """The nightly job's `monitor` task: the same sync as `trace2eval monitor <suite> --sample-rate R`,
    on the living suite, when this run published it validated; then, with fail_on_monitored_regression,
    fail when a monitored scorer's production pass rate fell beyond the gates' tolerance.

    What the platform refuses (a server that starts no code scorers, a scorer whose registered form
    differs from the suite's) is a warning in the task's output and values, never a failed night:
    the suite itself is fine. A store that cannot be reached fails the task. `now_ms`: when the
    verdicts are read (tests)."""
    from trace2eval.sessions.workdirs import session_workdir

    settings = JobTaskSettings.from_params(params)
    rate, check = settings.monitor_sample_rate, settings.fail_on_monitored_regression
    values: dict[str, Any] = {"status": "skipped", "sample_rate": rate, "regressed": ""}
    if not rate and not check:
        values["reason"] = "monitor_sample_rate is 0 (off) and fail_on_monitored_regression is false"
        ui.say(f"[{MONITOR_TASK}] nothing to do: {values['reason']}")
        return values
    apply_safe_mlflow_env()
    if dbutils is not None:
        _use_notebook_identity(dbutils)
        _load_secrets(dbutils, settings.secret_scope)
    ui.say(f"[{MONITOR_TASK}] living suite {settings.suite_dir}")
    with session_workdir(settings.suite_dir, read_only=True) as (local_dir, _sync):
        if rate:
            values.update(_sync_monitors(local_dir, settings))
        else:
            values["reason"] = "monitor_sample_rate is 0 (off): the monitors were not synced"
        moved = monitored_regressions(local_dir, settings, now_ms) if check else []
    if moved:
        values["regressed"] = ", ".join(m["scorer"] for m in moved)[:500]
        raise MonitoredRegression(
            "monitored regression: "
            + "; ".join(
                f"{m['scorer']} fell from {m['before']:.1%} ({m['traces_before']} traces) to {m['after']:.1%} "
                f"({m['traces_after']} traces) on {m['day']}"
                for m in moved
            )
            + " on production traces, beyond the gates' tolerance",
            f"see the Production monitors section of {settings.suite_dir}/SUITE.md; fix the agent, or set "
            "fail_on_monitored_regression=false to only report it",
        )
    return values


def _published_validated(suite_dir: Path, run_id: str) -> bool:
    """Whether this job run's session is in the suite's history as published with a passed validation."""
    path = suite_dir / "state" / "runs.json"
    try:
        history = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    except ValueError:
        return False
    return any(
        isinstance(r, dict)
        and str(r.get("session")) == run_id
        and r.get("published", True)
        and r.get("validation_status") == "passed"
        for r in (history if isinstance(history, list) else [])
    )


def _sync_monitors(suite_dir: Path, settings: JobTaskSettings) -> dict[str, Any]:
    from trace2eval.sessions import monitor as monitors

    if not _published_validated(suite_dir, settings.run_id):
        reason = "this run did not publish a validated suite: the monitors keep their last sync"
        ui.say(f"[{MONITOR_TASK}] {reason}")
        return {"reason": reason}
    target = dataclasses.replace(
        monitors.resolve(suite_dir, settings.tracking_uri), experiment_id=settings.experiment_id
    )
    result = monitors.sync(target, settings.monitor_sample_rate)
    for label, names in (("registered", result.added), ("updated", result.updated), ("stopped", result.stopped)):
        if names:
            ui.say(f"[{MONITOR_TASK}] {label}: {', '.join(names)}")
    for item in result.not_started + result.skipped:
        ui.warn(f"not running {item['name']}: {item['reason']}")
    differ = sorted(set(result.identity.get("differ", {})) | set(result.identity.get("problems", {})))
    if differ:
        ui.warn(
            f"the registered form of {', '.join(differ)} does not say what the suite's scorers.py says; not started"
        )
    not_running = {i["name"] for i in result.not_started + result.skipped} | set(differ)
    running = [n for n in result.added + result.updated + result.resampled + result.unchanged if n not in not_running]
    return {
        "status": "synced",
        "registered": len(result.added),
        "updated": len(result.updated),
        "stopped": len(result.stopped),
        "running": len(running),
        "not_started": len(result.not_started),
        "skipped": len(result.skipped),
    }


def monitored_regressions(
    suite_dir: Path, settings: JobTaskSettings, now_ms: int | None = None
) -> list[dict[str, Any]]:
    """The monitored scorers whose production pass rate fell beyond the suite's gate tolerance: what
    SUITE.md calls out (report/production.py), rises left out."""
    from trace2eval.report.production import summary
    from trace2eval.sessions.monitor import PREFIX

    gates = suite_dir / "evaluation" / "eval_gates.json"
    tolerance = float((json.loads(gates.read_text(encoding="utf-8")) if gates.exists() else {}).get("tolerance", 0.05))
    try:
        found = summary(settings.tracking_uri, settings.experiment_id, PREFIX, tolerance, now_ms=now_ms)
    except Exception as exc:
        raise Trace2EvalError(
            f"cannot read the production monitors' verdicts of experiment {settings.experiment_id} "
            f"({type(exc).__name__}: {str(exc)[:300]})",
            "check the tracking URI, or set fail_on_monitored_regression=false",
        ) from None
    return [m for m in found["moved"] if m["regressed"]]


def session_config(settings: JobTaskSettings):
    """The session's settings from job parameters: the same `SessionConfig.from_inputs` the CLI flags go through."""
    from trace2eval.config import SessionConfig

    config = SessionConfig.from_inputs(
        settings.experiment_id,
        settings.tracking_uri,
        llm=settings.llm,
        llm_model=settings.llm_model,
        judge_model=settings.judge_model,
        max_traces=settings.max_traces,
        since=settings.since,
        max_fix_attempts=settings.max_fix_attempts,
        source=settings.trace_source,
    )
    return config.model_copy(update={"suite_dir": settings.suite_dir, "max_suite_rows": settings.max_suite_rows})


def task_values(session, task: str, status: str, settings: JobTaskSettings) -> dict[str, Any]:
    """Small JSON values for downstream tasks and the run page (the condition reads validation_status)."""
    from trace2eval.sessions import ownership

    summary = session.plan().task(task).summary
    values: dict[str, Any] = {"status": status, "session_dir": settings.session_dir}
    if status == "skipped" and not TASK[task].validates:
        values["reason"] = str(summary.get("reason", ""))[:500]
    elif task == "initializer":
        values.update(
            traces=summary.get("traces", 0),
            new_traces=summary.get("new_traces", summary.get("traces", 0)),
            findings=summary.get("findings", 0),
        )
    elif task == "dataset":
        values.update(rows=summary.get("rows", 0), rows_added=summary.get("added", summary.get("rows", 0)))
    elif task == "scorers":
        values.update(code_scorers=summary.get("code_scorers", 0), judges=summary.get("judges", 0))
    elif TASK[task].validates:
        validation = session.validation()
        values.update(
            validation_status=validation.validation_status if validation else "failed",
            mlflow_run_id=(validation.run_id if validation else None) or "",
            gate_status=(validation.gate_status if validation else None) or "",
            conflicts=len(ownership.conflicts(session.dir)),
            suite_dir=settings.suite_dir,
        )
    return values


def _use_notebook_identity(dbutils: Any) -> None:
    """Let child processes (run_eval.py) act as the job's identity.

    In-process, MLflow and the SDK authenticate from the notebook context; a subprocess has no
    context, so the workspace URL and the run's short-lived token go to this process's environment
    (inherited by children, never written or printed). Outside Databricks nothing happens.
    """
    if "DATABRICKS_RUNTIME_VERSION" not in os.environ or os.environ.get("DATABRICKS_TOKEN"):
        return
    try:
        context = dbutils.notebook.entry_point.getDbutils().notebook().getContext()
        host, token = context.apiUrl().get(), context.apiToken().get()
    except Exception:  # the context API differs between runtimes; in-process auth still works
        ui.warn("could not read the notebook's credentials for run_eval.py; it falls back to the default auth chain")
        return
    os.environ.setdefault("DATABRICKS_HOST", host)
    os.environ["DATABRICKS_TOKEN"] = token


def _load_secrets(dbutils: Any, scope: str | None) -> None:
    """API keys from the secret scope into this process's environment (never to files or logs)."""
    if not scope:
        return
    try:
        present = {getattr(s, "key", s) for s in dbutils.secrets.list(scope)}
    except Exception as exc:
        raise JobParameterError(
            f"cannot read secret scope {scope!r} ({type(exc).__name__})",
            "create it (`databricks secrets create-scope`) and give the job's identity READ on it",
        ) from None
    for key, env_name in SECRET_KEYS.items():
        if key in present and not os.environ.get(env_name):
            os.environ[env_name] = dbutils.secrets.get(scope, key)
