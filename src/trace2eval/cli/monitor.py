"""`trace2eval monitor`: the suite's scorers as production monitors on the experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.cli.options import JudgeModel, Quiet
from trace2eval.errors import Trace2EvalError
from trace2eval.printable import printable
from trace2eval.sessions import monitor as monitors


def monitor(
    suite: Annotated[Path, typer.Argument(help="Session folder or living suite folder.")],
    # No environment variable: an inherited MLFLOW_TRACKING_URI (notebooks set one) must not point
    # the monitors at another store than the one the suite was generated from.
    tracking_uri: Annotated[
        Optional[str],
        typer.Option("--tracking-uri", help="The experiment's tracking store, when the suite does not keep it."),
    ] = None,
    sample_rate: Annotated[
        float,
        typer.Option("--sample-rate", envvar="TRACE2EVAL_MONITOR_SAMPLE_RATE", help="Share of new traces scored."),
    ] = 1.0,
    filter_string: Annotated[
        Optional[str],
        typer.Option("--filter", help="Score only the traces this MLflow filter matches, e.g. \"tags.env = 'prod'\"."),
    ] = None,
    judges: Annotated[bool, typer.Option("--judges", help="Monitor with the suite's LLM judges too.")] = False,
    judge_model: JudgeModel = None,
    status: Annotated[bool, typer.Option("--status", help="List the registered scorers and their sampling.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop every scorer trace2eval registered.")] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not run the registered code scorers beside the suite's on its rows.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Register the suite's scorers on its experiment and start them on new traces; run again to sync.

    Example: trace2eval monitor sessions/2026-11-27_101500 --sample-rate 0.2

    A second call brings the registered scorers in line with the suite: new ones are registered,
    changed ones updated, dropped ones stopped. Only scorers named trace2eval_* are touched.
    """
    ui.set_quiet(quiet)
    if status and stop:
        raise Trace2EvalError("--status and --stop cannot be combined", "pass one of them")
    target = monitors.resolve(suite, tracking_uri)
    if stop:
        stopped = monitors.stop_all(target)
        print(f"Stopped {len(stopped)} scorer(s): {', '.join(stopped) or 'none was running'}")
        return
    if not status:
        result = monitors.sync(
            target, sample_rate, filter_string, judges=judges, judge_model=judge_model, check_identity=not no_check
        )
        _print_sync(result, sample_rate)
    _print_status(monitors.registered(target))


def _print_sync(result: monitors.SyncResult, rate: float) -> None:
    for label, names in (
        ("registered", result.added),
        ("updated", result.updated),
        ("sampling set", result.resampled),
        ("unchanged", result.unchanged),
        ("stopped (dropped from the suite)", result.stopped),
    ):
        if names:
            print(f"{label}: {', '.join(names)}")
    identity = result.identity
    if identity.get("compared"):
        same = [n for n in identity["compared"] if n not in identity.get("differ", {})]
        print(
            f"identity: {len(same)} of {len(identity['compared'])} registered code scorers say what the suite says on "
            f"all {identity.get('rows', 0)} dataset rows ({identity.get('rows_with_trace', 0)} with their trace)"
        )
    for item in result.not_started + result.skipped:
        print(printable(f"not running {item['name']}: {item['reason']}"))
    for note in result.notes:
        print(printable(f"note: {note}"))
    differ = sorted(set(identity.get("differ", {})) | set(identity.get("problems", {})))
    if differ:
        raise Trace2EvalError(
            f"the registered form of {', '.join(differ)} does not say what the suite's scorers.py says "
            "(was scorers.py edited?); they were not started",
            "regenerate the suite's scorers or undo the edit, then run trace2eval monitor again",
        )


def _print_status(found: list[monitors.Registered]) -> None:
    if not found:
        print("No scorers are registered on this experiment.")
        return
    print(f"{'scorer':40} {'version':>7} {'sample rate':>11}  filter / owner")
    for r in sorted(found, key=lambda r: (not r.ours, r.name)):
        rate = "not started" if r.sample_rate is None else "stopped" if not r.sample_rate else f"{r.sample_rate:g}"
        owner = "" if r.ours else "(registered by hand: left alone)"
        print(printable(f"{r.name:40} {r.version or '':>7} {rate:>11}  {r.filter_string or ''} {owner}".rstrip()))
