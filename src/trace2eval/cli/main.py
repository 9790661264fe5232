"""The `trace2eval` command: wires one module per command and prints expected errors plainly."""

from __future__ import annotations

import functools
import sys

import typer

from trace2eval.env import apply_safe_mlflow_env

apply_safe_mlflow_env()  # before anything imports mlflow

from trace2eval.cli.demo import demo  # noqa: E402
from trace2eval.cli.job import run_local  # noqa: E402
from trace2eval.cli.report import report  # noqa: E402
from trace2eval.cli.run import resume, run, task  # noqa: E402
from trace2eval.cli.status import status  # noqa: E402
from trace2eval.errors import Trace2EvalError  # noqa: E402

app = typer.Typer(
    help="Turn an MLflow experiment's production traces into a runnable, validated MLflow 3 evaluation suite.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def handle_errors(command):
    """Expected failures print `Error: <what> — <how to fix>` and exit 1; Ctrl-C exits 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Trace2EvalError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("Interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


for command in (run, task, resume, status, report, demo):
    app.command()(handle_errors(command))

job_app = typer.Typer(help="The Databricks job of the bundle (databricks.yml), run locally.", no_args_is_help=True)
job_app.command("run-local")(handle_errors(run_local))
app.add_typer(job_app, name="job")


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="trace2eval")
