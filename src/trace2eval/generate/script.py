"""`run_eval.py`, rendered with the session's generation-time defaults."""

from __future__ import annotations

import ast

from trace2eval.generate.render import render

GATE_TOLERANCE = 0.05


def render_run_eval(tracking_uri: str, experiment_id: str, judge_model: str | None, run_name: str) -> str:
    code = render(
        "run_eval.py.j2", tracking_uri=tracking_uri, experiment_id=str(experiment_id),
        judge_model=judge_model, run_name=run_name, gate_tolerance=GATE_TOLERANCE,
    )
    ast.parse(code)
    return code


def render_eval_dataset(summary: str) -> str:
    code = render("eval_dataset.py.j2", summary=summary)
    ast.parse(code)
    return code
