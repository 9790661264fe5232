"""`trace2eval status`: the task table, findings and metrics of a session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trace2eval.printable import printable

from trace2eval.sessions import ownership, workdirs
from trace2eval.report.context import PUBLISH_FILE, SEVERITY_ORDER
from trace2eval.report.render import HTML_NAME
from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def _cell(value) -> str:
    """State text (it may quote traces) as plain terminal text: no rich markup, no control characters."""
    return escape(printable(str(value), keep=""))


def status(session: Annotated[Path, typer.Argument(help="Session folder.")]) -> None:
    """Show where each task stands, what the analysis found and the validation metrics.

    Example: trace2eval status sessions/2026-11-27_101500
    """
    with workdirs.session_workdir(session, read_only=True) as (local, _):
        _show(Session.open(local))


def _show(s: Session) -> None:
    plan = s.plan()
    console = Console()
    table = Table(title=f"Session {plan.session_id} ({plan.engine})")
    for col in ("task", "status", "attempts", "seconds", "notes"):
        table.add_column(col)
    for t in plan.tasks:
        notes = t.error or ", ".join(
            f"{k}={v}" for k, v in t.summary.items() if k != "traceback" and not isinstance(v, (dict, list))
        )
        table.add_row(
            t.name, t.status, str(t.attempts), "" if t.duration_s is None else f"{t.duration_s:.1f}", _cell(notes[:90])
        )
    console.print(table)
    if s.analysis_file.exists():
        analysis = s.analysis()
        findings = Table(title="Findings")
        for col in ("finding", "severity", "traces", "evidence"):
            findings.add_column(col)
        ranked = sorted(analysis.findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), -f.prevalence.traces))
        for f in ranked:
            findings.add_row(
                _cell(f.id),
                f"[{SEVERITY_STYLE.get(f.severity, '')}]{_cell(f.severity)}[/]",
                f"{f.prevalence.traces} ({f.prevalence.rate:.0%})",
                _cell(", ".join(f.evidence[:2])),
            )
        console.print(findings)
        if analysis.guards:
            guards = Table(title="Guards: failure checks no trace fails yet, kept to catch the first")
            for col in ("guard", "severity", "checked"):
                guards.add_column(col)
            for g in analysis.guards:
                guards.add_row(
                    _cell(g.id), f"[{SEVERITY_STYLE.get(g.severity, '')}]{_cell(g.severity)}[/]", str(g.checked)
                )
            console.print(guards)
    validation = s.validation()
    if validation:
        metrics = Table(
            title=f"Validation: {validation.validation_status} (run {validation.run_id}, "
            f"gates {validation.gate_status or 'n/a'})"
        )
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for k, v in sorted(validation.metrics.items()):
            if k.endswith("/mean") and isinstance(v, (int, float)):
                metrics.add_row(_cell(k), f"{v:.3f}")
        console.print(metrics)
    for conflict in ownership.conflicts(s.dir):
        console.print(_cell(f"Kept your edited {conflict['file']}; the generated version is {conflict['new_version']}"))
    publish = s.state_dir / PUBLISH_FILE
    if publish.exists():
        try:
            state = read_json(publish)
        except Exception:
            state = {}
        run = (state.get("generation_run") or {}).get("run_id")
        dataset = state.get("dataset") or {}
        if run:
            console.print(f"MLflow generation run: {run}")
        if dataset.get("name") and not dataset.get("skipped"):
            console.print(f"MLflow evaluation dataset: {dataset['name']} ({dataset.get('records')} records)")
        elif dataset.get("skipped"):
            console.print(f"MLflow evaluation dataset: not registered ({dataset['skipped']})")
    report = s.dir / HTML_NAME
    console.print(f"Report: {report}" if report.exists() else f"Report: not written yet (trace2eval report {s.dir})")
