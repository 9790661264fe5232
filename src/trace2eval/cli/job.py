"""`trace2eval job run-local`: the Databricks job of the bundle, run on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trace2eval import ui
from trace2eval.printable import printable
from trace2eval.bundle import definition, local_run
from trace2eval.cli.options import Quiet


def run_local(
    target: Annotated[
        Optional[str], typer.Option("--target", "-t", help="Bundle target (default: the one marked default).")
    ] = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Job resource key, when the bundle has several.")] = None,
    var: Annotated[Optional[list[str]], typer.Option("--var", help="Bundle variable, name=value (repeatable).")] = None,
    param: Annotated[
        Optional[list[str]], typer.Option("--param", help="Job parameter for this run, name=value (repeatable).")
    ] = None,
    run_id: Annotated[
        Optional[str], typer.Option("--run-id", help="Reuse a run id to repair a run: finished tasks are not redone.")
    ] = None,
    bundle_root: Annotated[
        Optional[Path], typer.Option("--bundle-root", help="Folder with databricks.yml (default: found upward).")
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where task logs and the run record go.")
    ] = local_run.DEFAULT_RUNS_DIR,
    quiet: Quiet = False,
) -> None:
    """Run the bundle's Databricks job on this machine, exactly as its YAML says.

    Task order (depends_on), run_if, if/else conditions, task values, job parameters, retries and
    timeouts, then the result Databricks would give the run and the alerts it would send. Each
    notebook runs in a fresh process, as on a job cluster.

    Example: trace2eval job run-local --var experiment_id=1 --var volume_path=./vol --param tracking_uri=sqlite:///mlflow.db

    The session folder is the last line of stdout; exit 1 when the run FAILED.
    """
    ui.set_quiet(quiet)
    variables = local_run.parse_variables(bundle_root, var)
    parameters = definition.parse_assignments(param, "--param")
    run = local_run.run_local(bundle_root, target, job, variables, parameters, run_id, runs_dir)

    table = Table(title=escape(f"{run.job_name}: run {run.run_id} {run.result_state}"))
    for column in ("task", "state", "attempts", "seconds", "values / error"):
        table.add_column(column)
    for task in run.tasks.values():
        detail = task.error or ", ".join(f"{k}={v}" for k, v in task.values.items() if k != "session_dir")
        if task.outcome:
            detail = f"outcome {task.outcome}"
        table.add_row(
            task.task_key,
            task.state,
            str(task.attempts),
            f"{task.seconds:.1f}",
            escape(printable(detail[:100], keep="")),
        )
    console = Console()
    console.print(table)
    for notification in run.notifications:
        targets = ", ".join(notification.emails + [f"webhook {w}" for w in notification.webhooks])
        console.print(escape(f"Would notify ({notification.event}, {notification.source}): {targets}"))
    for alert in run.health_alerts:
        console.print(escape(f"Health alert: {alert}"))
    console.print(escape(f"Record: {run.record_dir}"))
    session = local_run.session_dir(run)
    if session:
        print(session)
    error = local_run.failure(run)
    if error is not None:
        raise error
