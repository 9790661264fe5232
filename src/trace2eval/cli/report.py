"""`trace2eval report`: (re)write a session's report.html and report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.cli.options import Quiet
from trace2eval.errors import Trace2EvalError
from trace2eval.report import publish, write_report
from trace2eval.report.links import UI_URL_ENV
from trace2eval.sessions.session import Session


def report(
    session: Annotated[Path, typer.Argument(help="Session folder.")],
    ui_url: Annotated[
        Optional[str],
        typer.Option(
            "--ui-url",
            envvar=UI_URL_ENV,
            help="MLflow UI address for trace links, e.g. http://127.0.0.1:5000 "
            "(http tracking servers and Databricks need none).",
        ),
    ] = None,
    previous: Annotated[
        Optional[Path],
        typer.Option("--previous", help="Compare with this session instead of the newest older one beside it."),
    ] = None,
    no_compare: Annotated[bool, typer.Option("--no-compare", help="Do not compare with a previous session.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not read the tracking store (use cached trace points).")
    ] = False,
    log_to_mlflow: Annotated[
        bool,
        typer.Option("--log-to-mlflow", help="Also update the generation run and the registered dataset in MLflow."),
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Write report.html (self-contained) and report.md for a session, finished or not.

    Example: trace2eval report sessions/2026-11-27_101500 --ui-url http://127.0.0.1:5000

    The report path is the last line of stdout.
    """
    ui.set_quiet(quiet)
    if ui_url and not ui_url.startswith(("http://", "https://")):
        raise Trace2EvalError(f"--ui-url {ui_url!r} is not an http(s) address", "pass e.g. http://127.0.0.1:5000")
    s = Session.open(session)
    if log_to_mlflow:
        if previous is not None or no_compare or offline:
            raise Trace2EvalError(
                "--log-to-mlflow cannot be combined with --previous, --no-compare or --offline",
                "run it alone, then rerun `trace2eval report` with those options if needed",
            )
        result = publish(s, ui_url=ui_url)
        for problem in result.problems:
            ui.warn(problem)
        if result.report is None:
            raise Trace2EvalError(
                "the report could not be written", "; ".join(result.problems) or "see the warnings above"
            )
        files = result.report
    else:
        other = "auto"
        if no_compare:
            other = None
        elif previous is not None:
            other = Session.open(previous)
        files = write_report(s, ui_url=ui_url, previous=other, read_traces=not offline)
    ui.say(f"{len(files.charts)} pictures: {', '.join(files.charts) or 'none (no analysis yet)'}")
    print(files.markdown)
    print(files.html)
