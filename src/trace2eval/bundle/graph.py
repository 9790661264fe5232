"""Run a job's task graph locally with the semantics of Databricks Jobs.

What is modelled, because the product's correctness depends on it:

- order: a task runs once every task in its `depends_on` has finished (here one at a time);
- `run_if` (ALL_SUCCESS default, AT_LEAST_ONE_SUCCESS, NONE_FAILED, ALL_DONE, AT_LEAST_ONE_FAILED,
  ALL_FAILED): unmet ALL_SUCCESS / AT_LEAST_ONE_SUCCESS / NONE_FAILED mark the task UPSTREAM_FAILED,
  unmet *_FAILED conditions mark it EXCLUDED; a task whose dependencies were all excluded is
  excluded whatever its `run_if`; an excluded task counts as a success downstream;
- `condition_task` (EQUAL_TO / NOT_EQUAL compare strings, the others compare numbers) and
  `depends_on: [{task_key, outcome: "true"|"false"}]`: the branch not taken is EXCLUDED;
- dynamic value references `{{job.parameters.x}}`, `{{job.run_id}}`, `{{tasks.t.values.k}}`, ...;
  job parameters are pushed down to notebook tasks as widgets (over `base_parameters`);
- `max_retries`, `retry_on_timeout`, `timeout_seconds` per task and for the job;
- the run's result comes from its LEAF tasks: FAILED if a leaf failed, timed out or was
  UPSTREAM_FAILED; SUCCESS_WITH_FAILURES if something failed but every leaf succeeded (no failure
  alert is sent then!); otherwise SUCCESS. Which notifications and health alerts would fire follows.

Notebook tasks run in a fresh Python process each (`local_notebook.py`), as on a job cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from trace2eval import ui
from trace2eval.bundle.definition import BundleError
from trace2eval.sessions.files import write_json

SUCCESS, FAILED, TIMEDOUT = "SUCCESS", "FAILED", "TIMEDOUT"
EXCLUDED, UPSTREAM_FAILED = "EXCLUDED", "UPSTREAM_FAILED"
SUCCESS_WITH_FAILURES = "SUCCESS_WITH_FAILURES"
FAILURE_STATES = {FAILED, TIMEDOUT, UPSTREAM_FAILED}
RUN_IF = {"ALL_SUCCESS", "AT_LEAST_ONE_SUCCESS", "NONE_FAILED", "ALL_DONE", "AT_LEAST_ONE_FAILED", "ALL_FAILED"}
NUMERIC_OPS = {
    "GREATER_THAN": float.__gt__,
    "GREATER_THAN_OR_EQUAL": float.__ge__,
    "LESS_THAN": float.__lt__,
    "LESS_THAN_OR_EQUAL": float.__le__,
}
MAX_INFINITE_RETRIES = 3  # max_retries: -1 means "forever" on Databricks; a local run stops here
_DYNAMIC = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_KNOWN_NAMESPACES = ("job.", "task.", "tasks.", "workspace.")


@dataclass
class TaskRun:
    task_key: str
    state: str = "PENDING"
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # condition tasks: "true" / "false"
    log: str | None = None
    note: str | None = None


@dataclass
class Notification:
    event: str  # on_start | on_success | on_failure | on_duration_warning_threshold_exceeded
    emails: list[str]
    webhooks: list[str]
    source: str = "job"  # or the task key, for task-level notifications


@dataclass
class JobRun:
    job_key: str
    job_name: str
    run_id: str
    parameters: dict[str, str]
    result_state: str = "PENDING"
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    leaves: list[str] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    health_alerts: list[str] = field(default_factory=list)
    started_at: str = ""
    seconds: float = 0.0
    record_dir: str = ""

    @property
    def failed_leaves(self) -> list[TaskRun]:
        return [self.tasks[k] for k in self.leaves if self.tasks[k].state in FAILURE_STATES]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TaskExecutor(Protocol):
    def __call__(
        self,
        task: dict[str, Any],
        widgets: dict[str, str],
        upstream: dict[str, dict[str, Any]],
        timeout_s: float | None,
        log_path: Path,
    ) -> tuple[str, dict[str, Any], str | None]:
        """Run one attempt; return (SUCCESS | FAILED | TIMEDOUT, task values, error)."""


def notebook_executor(
    task: dict[str, Any],
    widgets: dict[str, str],
    upstream: dict[str, dict[str, Any]],
    timeout_s: float | None,
    log_path: Path,
) -> tuple[str, dict[str, Any], str | None]:
    """A notebook task in a fresh `python -m trace2eval.bundle.local_notebook` process."""
    notebook = Path(task["notebook_task"]["notebook_path"])
    if not notebook.exists() and notebook.with_suffix(".py").exists():
        notebook = notebook.with_suffix(".py")  # the CLI lets a bundle name a notebook without extension
    if not notebook.exists():
        return FAILED, {}, f"notebook {notebook} does not exist"
    request = log_path.with_suffix(".request.json")
    values_out = log_path.with_suffix(".values.json")
    values_out.unlink(missing_ok=True)
    write_json(
        request,
        {
            "notebook": str(notebook),
            "widgets": widgets,
            "task_key": task["task_key"],
            "upstream_values": upstream,
            "values_out": str(values_out),
        },
    )
    with log_path.open("a", encoding="utf-8") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "trace2eval.bundle.local_notebook", str(request)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                env={**os.environ},
            )
        except subprocess.TimeoutExpired:
            return TIMEDOUT, {}, f"timed out after {timeout_s:.0f} s (timeout_seconds)"
    outcome = json.loads(values_out.read_text()) if values_out.exists() else {}
    if proc.returncode != 0:
        error = outcome.get("error") or f"the notebook process ended with exit code {proc.returncode}"
        return FAILED, outcome.get("values", {}), " ".join(error.split())[:2000]
    return SUCCESS, outcome.get("values", {}), None


class GraphRunner:
    """One run of one job."""

    def __init__(
        self,
        job_key: str,
        job: dict[str, Any],
        run_id: str,
        parameters: dict[str, str] | None,
        record_dir: Path,
        executor: TaskExecutor = notebook_executor,
        trigger: str = "one_time",
    ):
        self.job_key, self.job, self.run_id = job_key, job, str(run_id)
        self.tasks = {t["task_key"]: t for t in job.get("tasks", [])}
        self.record_dir = Path(record_dir)
        self.executor = executor
        self.trigger = trigger
        self.start = datetime.now(timezone.utc)
        declared = {p["name"]: str(p.get("default", "")) for p in job.get("parameters", [])}
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise BundleError(
                f"unknown job parameter(s) {sorted(unknown)}", f"job parameters are: {', '.join(declared)}"
            )
        self.parameters = {**declared, **(parameters or {})}
        check_graph(job)

    # -- dynamic value references --------------------------------------------------------
    def resolve(self, text: Any, runs: dict[str, TaskRun], task_key: str) -> Any:
        if not isinstance(text, str) or "{{" not in text:
            return text
        return _DYNAMIC.sub(lambda m: self._reference(m.group(1).replace("`", ""), runs, task_key, m.group(0)), text)

    def _reference(self, ref: str, runs: dict[str, TaskRun], task_key: str, literal: str) -> str:
        parts = ref.split(".")
        start = self.start
        simple = {
            "job.run_id": self.run_id,
            "job.id": f"local-{self.job_key}",
            "job.name": self.job.get("name", self.job_key),
            "job.repair_count": "0",
            "job.trigger.type": self.trigger,
            "task.name": task_key,
            "task.run_id": f"{self.run_id}-{task_key}",
            "task.execution_count": str(runs[task_key].attempts or 1),
            "job.start_time.iso_date": start.date().isoformat(),
            "job.start_time.iso_datetime": start.isoformat(timespec="seconds"),
            "job.start_time.timestamp_ms": str(int(start.timestamp() * 1000)),
            "workspace.id": "0",
        }
        if ref in simple:
            return simple[ref]
        if parts[:2] == ["job", "parameters"] and len(parts) == 3:
            if parts[2] not in self.parameters:
                raise BundleError(f"task {task_key!r} refers to {literal} but the job has no parameter {parts[2]!r}")
            return self.parameters[parts[2]]
        if parts[0] == "tasks" and len(parts) >= 3 and parts[1] in self.tasks:
            upstream = runs[parts[1]]
            if parts[2] == "values" and len(parts) == 4:
                if parts[3] not in upstream.values:
                    raise _TaskFailure(
                        f"{literal}: task {parts[1]!r} ({upstream.state}) did not set task value {parts[3]!r}"
                    )
                value = upstream.values[parts[3]]
                return (
                    json.dumps(value)
                    if isinstance(value, (dict, list))
                    else str(value).lower()
                    if isinstance(value, bool)
                    else str(value)
                )
            if parts[2] == "result_state":
                return upstream.state.lower()
        if ref.startswith(_KNOWN_NAMESPACES):
            raise BundleError(f"task {task_key!r}: unknown dynamic value reference {literal}")
        return literal  # outside the known namespaces Databricks passes the text through unchanged

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> JobRun:
        run = JobRun(
            job_key=self.job_key,
            job_name=self.job.get("name", self.job_key),
            run_id=self.run_id,
            parameters=dict(self.parameters),
            started_at=self.start.isoformat(timespec="seconds"),
            record_dir=str(self.record_dir),
        )
        self.record_dir.mkdir(parents=True, exist_ok=True)
        runs = {key: TaskRun(key) for key in self.tasks}
        run.tasks = runs
        run.leaves = leaves(self.job)
        t0 = time.monotonic()
        job_timeout = float(self.job.get("timeout_seconds") or 0) or None
        for key in topological_order(self.job):
            task = self.tasks[key]
            remaining = None if job_timeout is None else job_timeout - (time.monotonic() - t0)
            state = self._gate(task, runs)
            if state is not None:
                runs[key].state = state
            elif remaining is not None and remaining <= 0:
                runs[key].state, runs[key].error = (
                    TIMEDOUT,
                    "the job's timeout_seconds ran out before this task started",
                )
            else:
                self._execute(task, runs, remaining)
            ui.say(
                f"  {key:<22} {runs[key].state}"
                + (f" ({runs[key].outcome})" if runs[key].outcome else "")
                + (f": {runs[key].error}" if runs[key].error else "")
            )
        run.seconds = round(time.monotonic() - t0, 2)
        run.result_state = result_state(runs, run.leaves)
        run.notifications = notifications(self.job, run)
        run.health_alerts = health_alerts(self.job, run.seconds)
        if run.health_alerts:
            run.notifications += _notify(self.job, "on_duration_warning_threshold_exceeded", "job")
        write_json(self.record_dir / "run.json", run.to_dict())
        return run

    def _gate(self, task: dict[str, Any], runs: dict[str, TaskRun]) -> str | None:
        """EXCLUDED / UPSTREAM_FAILED when the task must not run, None when it runs."""
        deps = task.get("depends_on") or []
        if not deps:
            return None
        effective = []
        for dep in deps:
            upstream = runs[dep["task_key"]]
            state = upstream.state
            if "outcome" in dep and state == SUCCESS and upstream.outcome != str(dep["outcome"]).lower():
                state = EXCLUDED  # the other branch of an if/else
            effective.append(state)
        if all(s == EXCLUDED for s in effective):
            return EXCLUDED
        succeeded = [s in (SUCCESS, EXCLUDED) for s in effective]
        failed = [s in FAILURE_STATES for s in effective]
        run_if = task.get("run_if", "ALL_SUCCESS")
        ok = {
            "ALL_SUCCESS": all(succeeded),
            "AT_LEAST_ONE_SUCCESS": any(s == SUCCESS for s in effective),
            "NONE_FAILED": not any(failed) and any(s == SUCCESS for s in effective),
            "ALL_DONE": True,
            "AT_LEAST_ONE_FAILED": any(failed),
            "ALL_FAILED": all(failed),
        }[run_if]
        if ok:
            return None
        return EXCLUDED if run_if in ("AT_LEAST_ONE_FAILED", "ALL_FAILED") else UPSTREAM_FAILED

    def _execute(self, task: dict[str, Any], runs: dict[str, TaskRun], job_remaining: float | None) -> None:
        key = task["task_key"]
        record = runs[key]
        if "condition_task" in task:
            record.attempts = 1
            try:
                record.outcome = self._condition(task["condition_task"], runs, key)
                record.state = SUCCESS
            except (_TaskFailure, ValueError) as exc:
                record.state, record.error = FAILED, str(exc)
            return
        if "notebook_task" not in task:
            kind = next((k for k in task if k.endswith("_task")), "unknown")
            record.state, record.error = FAILED, f"run-local runs notebook and condition tasks; {key!r} is a {kind}"
            return
        retries = int(task.get("max_retries", 0) or 0)
        retries = MAX_INFINITE_RETRIES if retries < 0 else retries
        log_path = self.record_dir / f"{key}.log"
        log_path.unlink(missing_ok=True)
        upstream = {k: r.values for k, r in runs.items() if r.state in (SUCCESS, FAILED) and r.attempts}
        while True:
            record.attempts += 1
            t0 = time.monotonic()
            try:
                widgets = self._widgets(task, runs, key)
            except _TaskFailure as exc:
                record.state, record.error = FAILED, str(exc)
                return
            timeout = float(task.get("timeout_seconds") or 0) or None
            if job_remaining is not None:
                timeout = min(timeout or job_remaining, job_remaining)
            state, values, error = self.executor(task, widgets, upstream, timeout, log_path)
            record.seconds += round(time.monotonic() - t0, 2)
            record.state, record.values, record.error, record.log = state, values, error, str(log_path)
            retryable = state == FAILED or (state == TIMEDOUT and task.get("retry_on_timeout"))
            if state == SUCCESS or not retryable or record.attempts > retries:
                return
            interval = int(task.get("min_retry_interval_millis", 0) or 0)
            record.note = f"retried (Databricks waits {interval // 1000} s between attempts; a local run does not)"
            ui.say(f"  {key:<22} attempt {record.attempts} {state}: {error}; retrying")

    def _widgets(self, task: dict[str, Any], runs: dict[str, TaskRun], key: str) -> dict[str, str]:
        base = task["notebook_task"].get("base_parameters") or {}
        widgets = {name: str(self.resolve(value, runs, key)) for name, value in base.items()}
        widgets.update(self.parameters)  # job parameters are pushed down and win over base_parameters
        return widgets

    def _condition(self, spec: dict[str, Any], runs: dict[str, TaskRun], key: str) -> str:
        left = str(self.resolve(spec.get("left", ""), runs, key))
        right = str(self.resolve(spec.get("right", ""), runs, key))
        op = spec.get("op")
        if op == "EQUAL_TO":
            return str(left == right).lower()
        if op == "NOT_EQUAL":
            return str(left != right).lower()
        if op in NUMERIC_OPS:
            try:
                return str(NUMERIC_OPS[op](float(left), float(right))).lower()
            except ValueError:
                raise _TaskFailure(f"{op} needs numbers, got {left!r} and {right!r}") from None
        raise _TaskFailure(f"unknown condition op {op!r}")


class _TaskFailure(Exception):
    pass


# -- graph helpers -----------------------------------------------------------------------------


def check_graph(job: dict[str, Any]) -> None:
    """Every dependency exists, no cycles, run_if and outcomes are valid."""
    tasks = {t["task_key"]: t for t in job.get("tasks", [])}
    if len(tasks) != len(job.get("tasks", [])):
        raise BundleError("two tasks share a task_key")
    for key, task in tasks.items():
        for dep in task.get("depends_on") or []:
            if dep["task_key"] not in tasks:
                raise BundleError(f"task {key!r} depends on unknown task {dep['task_key']!r}")
            if "outcome" in dep and "condition_task" not in tasks[dep["task_key"]]:
                raise BundleError(f"task {key!r} uses an outcome of {dep['task_key']!r}, which is not a condition task")
        if task.get("run_if", "ALL_SUCCESS") not in RUN_IF:
            raise BundleError(
                f"task {key!r} has run_if {task.get('run_if')!r}", f"use one of {', '.join(sorted(RUN_IF))}"
            )
    topological_order(job)


def topological_order(job: dict[str, Any]) -> list[str]:
    tasks = [t["task_key"] for t in job.get("tasks", [])]
    needs = {t["task_key"]: [d["task_key"] for d in t.get("depends_on") or []] for t in job.get("tasks", [])}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(tasks):
        ready = [k for k in tasks if k not in done and all(n in done for n in needs[k])]
        if not ready:
            raise BundleError(f"the job's tasks depend on each other in a cycle: {sorted(set(tasks) - done)}")
        for key in ready:  # definition order among the ready ones
            order.append(key)
            done.add(key)
    return order


def leaves(job: dict[str, Any]) -> list[str]:
    """Tasks nothing depends on: they decide the run's result."""
    upstream = {d["task_key"] for t in job.get("tasks", []) for d in t.get("depends_on") or []}
    return [t["task_key"] for t in job.get("tasks", []) if t["task_key"] not in upstream]


def result_state(runs: dict[str, TaskRun], leaf_keys: list[str]) -> str:
    if any(runs[k].state in FAILURE_STATES for k in leaf_keys):
        return FAILED
    if any(r.state in FAILURE_STATES for r in runs.values()):
        return SUCCESS_WITH_FAILURES
    return SUCCESS


def _notify(holder: dict[str, Any], event: str, source: str) -> list[Notification]:
    emails = list((holder.get("email_notifications") or {}).get(event) or [])
    hooks = [w.get("id", "") for w in (holder.get("webhook_notifications") or {}).get(event) or []]
    return [Notification(event, emails, hooks, source)] if emails or hooks else []


def notifications(job: dict[str, Any], run: JobRun) -> list[Notification]:
    """What Databricks would send for this run (job-level and task-level settings)."""
    settings = job.get("notification_settings") or {}
    out = _notify(job, "on_start", "job")
    if run.result_state == FAILED:
        out += _notify(job, "on_failure", "job")
    elif run.result_state in (SUCCESS, SUCCESS_WITH_FAILURES):
        out += _notify(job, "on_success", "job")
    for task in job.get("tasks", []):
        state = run.tasks[task["task_key"]].state
        if state in (FAILED, TIMEDOUT):
            out += _notify(task, "on_failure", task["task_key"])
        elif state == SUCCESS:
            out += _notify(task, "on_success", task["task_key"])
    if settings.get("no_alert_for_skipped_runs") and run.result_state == "SKIPPED":
        out = []
    return out


def health_alerts(job: dict[str, Any], seconds: float) -> list[str]:
    alerts = []
    for rule in (job.get("health") or {}).get("rules", []):
        if (
            rule.get("metric") == "RUN_DURATION_SECONDS"
            and rule.get("op") == "GREATER_THAN"
            and seconds > float(rule["value"])
        ):
            alerts.append(f"run took {seconds:.0f} s, over the RUN_DURATION_SECONDS threshold of {rule['value']} s")
    return alerts
