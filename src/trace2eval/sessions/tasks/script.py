"""Script: render run_eval.py with this session's defaults."""

from __future__ import annotations

from typing import Any

from trace2eval.generate.script import render_run_eval
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    write_generated(
        session.dir,
        "evaluation/run_eval.py",
        render_run_eval(
            # Generated code never holds a password: run_eval.py takes the full URI from MLFLOW_TRACKING_URI.
            config.shown_tracking_uri,
            config.experiment_id,
            config.judge_model,
            run_name=f"trace2eval-{session.id}",
        ),
        "script",
    )
    return {"file": "evaluation/run_eval.py"}
