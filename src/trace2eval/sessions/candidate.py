"""Run a suite's `run_eval.py --agent TARGET` (the candidate-vs-production comparison) from
trace2eval: the CLI's `compare` and the bundle's regression job both go through here, so they run
exactly the program CI runs and report its exit code (0 no regression, 1 regression, 2 could not
evaluate)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from trace2eval.errors import Trace2EvalError

NO_REGRESSION, REGRESSION, NOT_EVALUATED = 0, 1, 2


def suite_folder(folder: Path) -> tuple[Path, Path | None]:
    """(the folder holding run_eval.py, the session folder when it is a session)."""
    if (folder / "run_eval.py").is_file():
        return folder, folder.parent if (folder.parent / "state").is_dir() else None
    if (folder / "evaluation" / "run_eval.py").is_file():
        return folder / "evaluation", folder if (folder / "state").is_dir() else None
    raise Trace2EvalError(
        f"{folder} holds no evaluation suite (no run_eval.py in it or in its evaluation/ folder)",
        "give a session folder, its evaluation/ folder, or the living suite's folder",
    )


def run_candidate(
    evaluation: Path,
    agent: str,
    env: dict[str, str],
    judge_model: str | None = None,
    extra: list[str] | None = None,
    capture: bool = False,
) -> tuple[int, dict[str, Any], str]:
    """(exit code, run_eval.py's --results-json report, its output when captured)."""
    if not agent.strip():
        raise Trace2EvalError("no candidate given", "pass --agent endpoints:/NAME (or module:function, or a URL)")
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "run_eval.py", "--agent", agent, "--results-json", str(results)]
        command += ["--judge-model", judge_model] if judge_model else ["--no-judges"]
        proc = subprocess.run(command + (extra or []), cwd=evaluation, env=env, capture_output=capture, text=True)
        report = json.loads(results.read_text()) if results.exists() else {}
    return proc.returncode, report, (proc.stdout or "") + (proc.stderr or "") if capture else ""


def summary_line(code: int, report: dict[str, Any]) -> str:
    """One line for a job run page or a log: what the comparison found."""
    candidate = report.get("candidate") or {}
    if code == NO_REGRESSION:
        return f"no regression: {candidate.get('answered', '?')} of {candidate.get('rows', '?')} rows compared"
    if code == REGRESSION:
        return "regression in " + ", ".join(report.get("regressions") or ["?"])
    error = report.get("error") or {}
    return f"could not evaluate the candidate ({error.get('kind', 'see the log')})"
