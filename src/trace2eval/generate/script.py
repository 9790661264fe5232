"""`run_eval.py`: the source of `evalscript.py` with the session's generation-time defaults.

The program is a real module of trace2eval (tested by importing it); rendering replaces only the
five settings assignments at its top, each value written as a Python literal.
"""

from __future__ import annotations

import ast
from pathlib import Path

from trace2eval.generate.render import py_literal, render

GATE_TOLERANCE = 0.05
SCRIPT = Path(__file__).with_name("evalscript.py")
SETTINGS = ("DEFAULT_TRACKING_URI", "DEFAULT_EXPERIMENT_ID", "DEFAULT_JUDGE_MODEL", "RUN_NAME", "GATE_TOLERANCE")


def render_run_eval(tracking_uri: str, experiment_id: str, judge_model: str | None, run_name: str) -> str:
    values = {
        "DEFAULT_TRACKING_URI": tracking_uri,
        "DEFAULT_EXPERIMENT_ID": str(experiment_id),
        "DEFAULT_JUDGE_MODEL": judge_model,
        "RUN_NAME": run_name,
        "GATE_TOLERANCE": GATE_TOLERANCE,
    }
    source = SCRIPT.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) in SETTINGS:
            name = node.targets[0].id
            if node.lineno != node.end_lineno:
                raise ValueError(f"evalscript.py: {name} must be assigned on one line")
            comment = lines[node.lineno - 1].partition("  #")[2]
            lines[node.lineno - 1] = f"{name} = {py_literal(values[name])}" + (f"  #{comment}" if comment else "")
            found.add(name)
    if found != set(SETTINGS):
        raise ValueError(f"evalscript.py lacks the settings {sorted(set(SETTINGS) - found)}")
    code = "\n".join(lines) + "\n"
    ast.parse(code)
    return code


def render_eval_dataset(summary: str) -> str:
    code = render("eval_dataset.py.j2", summary=summary)
    ast.parse(code)
    return code
