"""`trace2eval status`: the task table, findings and metrics of a session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trace2eval.sessions import ownership, volume
from trace2eval.sessions.session import Session


def status(session: Annotated[Path, typer.Argument(help="Session folder.")]) -> None:
    """Show where each task stands, what the analysis found and the validation metrics.

    Example: trace2eval status sessions/2026-11-27_101500
    """
    with volume.session_workdir(session, read_only=True) as (local, _):
        _show(Session.open(local))


def _show(s: Session) -> None:
    plan = s.plan()
    console = Console()
    table = Table(title=f"Session {plan.session_id} ({plan.engine})")
    for col in ("task", "status", "attempts", "seconds", "notes"):
        table.add_column(col)
    for t in plan.tasks:
        notes = t.error or ", ".join(f"{k}={v}" for k, v in t.summary.items() if k != "traceback" and not isinstance(v, (dict, list)))
        table.add_row(t.name, t.status, str(t.attempts), "" if t.duration_s is None else f"{t.duration_s:.1f}", notes[:90])
    console.print(table)
    if s.analysis_file.exists():
        analysis = s.analysis()
        findings = Table(title="Findings")
        for col in ("finding", "severity", "traces", "evidence"):
            findings.add_column(col)
        for f in analysis["findings"]:
            findings.add_row(f["id"], f["severity"], f"{f['prevalence']['traces']} ({f['prevalence']['rate']:.0%})", ", ".join(f["evidence"][:2]))
        console.print(findings)
    validation = s.validation()
    if validation:
        metrics = Table(title=f"Validation: {validation['validation_status']} (run {validation.get('run_id')})")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for k, v in sorted(validation.get("metrics", {}).items()):
            if k.endswith("/mean"):
                metrics.add_row(k, f"{v:.3f}")
        console.print(metrics)
    for conflict in ownership.conflicts(s.dir):
        console.print(f"Kept your edited {conflict['file']}; the generated version is {conflict['new_version']}")
