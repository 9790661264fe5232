"""`trace2eval job run-local`: the bundle's job, read from its YAML, run here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trace2eval import ui
from trace2eval.bundle import definition
from trace2eval.bundle.definition import BundleError
from trace2eval.bundle.graph import FAILED, GraphRunner, JobRun
from trace2eval.errors import Trace2EvalError

DEFAULT_RUNS_DIR = Path(".trace2eval") / "job-runs"


class JobRunFailed(Trace2EvalError):
    """The local job run ended FAILED: what Databricks would alert on."""


def new_run_id() -> str:
    """Databricks run ids are large integers; a millisecond clock gives unique, sortable ones."""
    return str(int(time.time() * 1000))


def parse_variables(bundle_root: Path | None, pairs: list[str] | None) -> dict[str, Any]:
    """`--var name=value`; a complex variable takes JSON (`--var alert_emails='["me@example.com"]'`)."""
    raw = definition.parse_assignments(pairs, "--var")
    if not raw:
        return {}
    root = definition.find_root(bundle_root)
    declared = definition.read_yaml(root / definition.BUNDLE_FILE).get("variables") or {}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if (declared.get(name) or {}).get("type") == "complex":
            try:
                out[name] = json.loads(value)
            except ValueError:
                raise BundleError(
                    f"--var {name} is a complex variable and needs JSON, got {value!r}",
                    f"e.g. --var '{name}=[\"someone@example.com\"]'",
                ) from None
        else:
            out[name] = value
    return out


DEFAULT_JOB = "trace2eval_nightly"


def run_local(
    bundle_root: Path | None = None,
    target: str | None = None,
    job_key: str | None = None,
    variables: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
    run_id: str | None = None,
    runs_dir: Path = DEFAULT_RUNS_DIR,
) -> JobRun:
    """Resolve the bundle for `target`, then run the job's task graph. Returns the run's record."""
    bundle = definition.load(bundle_root, target, variables)
    if job_key is None and len(bundle.jobs) > 1 and DEFAULT_JOB in bundle.jobs:
        job_key = DEFAULT_JOB  # the nightly job, unless --job names another (trace2eval_regression)
    key, job = bundle.job(job_key)
    check_tracking_store(job, parameters)
    run_id = run_id or new_run_id()
    record_dir = Path(runs_dir) / key / run_id
    ui.say(f"Job {key} ({job.get('name')}), bundle {bundle.name}, target {bundle.target}, run {run_id}")
    run = GraphRunner(key, job, run_id, parameters, record_dir).run()
    ui.say(f"Result: {run.result_state} in {run.seconds:.0f} s")
    return run


def check_tracking_store(job: dict[str, Any], parameters: dict[str, str] | None) -> None:
    """A local store that does not exist fails every task the same way, retries included: say so once, first."""
    from trace2eval.errors import SourceError
    from trace2eval.traces.source import check_reachable

    declared = {p.get("name"): str(p.get("default", "")) for p in job.get("parameters") or [] if isinstance(p, dict)}
    uri = {**declared, **(parameters or {})}.get("tracking_uri", "")
    if not uri.startswith("sqlite:"):
        return  # a server or Databricks: the tasks check it themselves, with the job's credentials
    try:
        check_reachable(uri)
    except SourceError as exc:
        raise SourceError(
            f"job parameter tracking_uri={uri}: {exc.what}",
            "pass --param tracking_uri=sqlite:///<an existing .db>; to try the job on sample data, run "
            "`trace2eval demo` first and pass --param tracking_uri=sqlite:///trace2eval-demo/mlflow.db "
            "--var experiment_id=1",
        ) from None


def session_dir(run: JobRun) -> str | None:
    """Where the run's session lives (the initializer publishes it as a task value)."""
    for task in run.tasks.values():
        if task.values.get("session_dir"):
            return str(task.values["session_dir"])
    return None


def failure(run: JobRun) -> JobRunFailed | None:
    """The error a failed run reports: the failed leaf, its first failed cause, and its log."""
    if run.result_state != FAILED:
        return None
    leaf = run.failed_leaves[0]
    cause = next((t for t in run.tasks.values() if t.state in ("FAILED", "TIMEDOUT")), leaf)
    alerted = [n for n in run.notifications if n.event == "on_failure"]
    where = f"see {cause.log}" if cause.log else f"see {run.record_dir}/run.json"
    return JobRunFailed(
        f"job run {run.run_id} FAILED: leaf task {leaf.task_key} is {leaf.state}"
        + (
            f" because task {cause.task_key} {cause.state}: {cause.error}"
            if cause.task_key != leaf.task_key
            else f": {leaf.error}"
        )
        + (f" (on_failure alerts: {_targets(alerted)})" if alerted else " (no on_failure alert is configured)"),
        where,
    )


def _targets(notifications) -> str:
    names = [e for n in notifications for e in n.emails] + [f"webhook {w}" for n in notifications for w in n.webhooks]
    return ", ".join(names)
