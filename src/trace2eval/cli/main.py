"""The `trace2eval` command: wires one module per command and prints expected errors plainly."""

from __future__ import annotations

import errno
import functools
import sys
from typing import Annotated

import typer

from trace2eval.env import apply_safe_mlflow_env

apply_safe_mlflow_env()  # before anything imports mlflow

from trace2eval.cli.compare import compare  # noqa: E402
from trace2eval.cli.demo import demo  # noqa: E402
from trace2eval.cli.job import run_local  # noqa: E402
from trace2eval.cli.monitor import monitor  # noqa: E402
from trace2eval.cli.report import report  # noqa: E402
from trace2eval.cli.run import resume, run, task  # noqa: E402
from trace2eval.cli.status import status  # noqa: E402
from trace2eval.errors import Trace2EvalError  # noqa: E402
from trace2eval.printable import printable  # noqa: E402

app = typer.Typer(
    help="Turn an MLflow experiment's production traces into a runnable, validated MLflow 3 evaluation suite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("trace2eval")
        except PackageNotFoundError:  # run from a source tree without installing
            import trace2eval

            number = trace2eval.__version__
        print(f"trace2eval {number}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Turn an MLflow experiment's production traces into a runnable, validated MLflow 3 evaluation suite."""


# Failures of the disk or of permissions a user can fix: said plainly, not as a traceback.
_DISK_ERRORS = {
    errno.ENOSPC: "free some space on that disk, or pick a folder on another one (--out)",
    errno.EDQUOT: "free some space within your quota, or pick a folder elsewhere (--out)",
    errno.EFBIG: "the file grew beyond what that file system allows: pick a folder on another one (--out)",
    errno.EROFS: "that file system is mounted read-only: pick a writable folder (--out)",
    errno.EACCES: "give yourself write access to that folder, or pick another one (--out)",
    errno.EPERM: "give yourself write access to that folder, or pick another one (--out)",
}


def _disk_error(exc: OSError) -> str | None:
    fix = _DISK_ERRORS.get(exc.errno)
    if fix is None:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {exc.strerror or exc} — {fix}"


def handle_errors(command):
    """Expected failures print `Error: <what> — <how to fix>` and exit 1; Ctrl-C exits 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Trace2EvalError as exc:
            print(printable(f"Error: {exc}"), file=sys.stderr)
            sys.exit(1)
        except OSError as exc:
            message = _disk_error(exc)
            if message is None:
                raise  # not something the user caused: a bug, keep the traceback
            print(printable(f"Error: {message}"), file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("Interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


for command in (run, task, resume, status, report, demo, compare, monitor):
    app.command()(handle_errors(command))

job_app = typer.Typer(help="The Databricks job of the bundle (databricks.yml), run locally.", no_args_is_help=True)
job_app.command("run-local")(handle_errors(run_local))
app.add_typer(job_app, name="job")


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="trace2eval")
