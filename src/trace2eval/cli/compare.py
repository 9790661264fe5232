"""`trace2eval compare`: run a session's (or the living suite's) evaluation against a candidate
version of the agent and gate on regressions against the production answers.

It runs the suite's own `run_eval.py --agent TARGET` (the same program CI runs), so what this
command says and what CI says cannot differ; the exit code is run_eval.py's: 0 no regression,
1 regression, 2 the candidate could not be evaluated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.errors import Trace2EvalError
from trace2eval.sessions.files import write_json
from trace2eval.sessions.workdirs import session_workdir

CANDIDATE_FILE = "candidate.json"  # in a session's state/: the latest comparison, for the report


def suite_folder(folder: Path) -> tuple[Path, Path | None]:
    """(the folder holding run_eval.py, the session folder when it is a session)."""
    if (folder / "run_eval.py").is_file():
        return folder, folder.parent if (folder.parent / "state").is_dir() else None
    if (folder / "evaluation" / "run_eval.py").is_file():
        return folder / "evaluation", folder if (folder / "state").is_dir() else None
    raise Trace2EvalError(
        f"{folder} holds no evaluation suite (no run_eval.py in it or in its evaluation/ folder) — "
        "give a session folder, its evaluation/ folder, or the living suite's folder"
    )


def compare(
    suite: Annotated[
        str, typer.Argument(help="Session folder, evaluation folder, or the living suite (a Volume path).")
    ],
    agent: Annotated[
        str,
        typer.Option(
            "--agent",
            help="The candidate: endpoints:/NAME, apps:/NAME, module:function, path/to/file.py:function, "
            "or an http(s):// OpenAI-compatible chat endpoint.",
        ),
    ],
    judge_model: Annotated[
        Optional[str], typer.Option("--judge-model", help="Judge model for the LLM judges (else code scorers only).")
    ] = None,
    agent_timeout: Annotated[
        Optional[float], typer.Option("--agent-timeout", help="Seconds per candidate call.")
    ] = None,
    agent_workers: Annotated[Optional[int], typer.Option("--agent-workers", help="Candidate calls at once.")] = None,
) -> None:
    """Evaluate a candidate version of the agent on the suite's rows and compare it with production.

    Example: trace2eval compare trace2eval-demo/sessions/<id> --agent my_agent.py:predict

    Exit codes: 0 no regression, 1 a scorer regressed (significantly, or past its tolerance in
    eval_gates.json), 2 the candidate could not be evaluated.
    """
    with session_workdir(suite, read_only=True) as (folder, _sync):
        evaluation, session_dir = suite_folder(Path(folder))
        env = dict(os.environ)
        if session_dir is not None:
            try:
                from trace2eval.sessions.session import Session

                config = Session.open(session_dir).config()
                env.setdefault("MLFLOW_TRACKING_URI", config.tracking_uri)
                env.setdefault("MLFLOW_EXPERIMENT_ID", str(config.experiment_id))
            except Exception:  # run_eval.py's own defaults then apply
                pass
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results.json"
            command = [sys.executable, "run_eval.py", "--agent", agent, "--results-json", str(results)]
            command += ["--judge-model", judge_model] if judge_model else ["--no-judges"]
            command += ["--agent-timeout", str(agent_timeout)] if agent_timeout else []
            command += ["--agent-workers", str(agent_workers)] if agent_workers else []
            ui.say(f"Comparing {agent} with production on {evaluation} …")
            code = subprocess.run(command, cwd=evaluation, env=env).returncode
            report = json.loads(results.read_text()) if results.exists() else {}
        if session_dir is not None and report.get("candidate", {}).get("scorers"):
            write_json(session_dir / "state" / CANDIDATE_FILE, report["candidate"])
            try:
                from trace2eval.report import write_report
                from trace2eval.sessions.session import Session

                write_report(Session.open(session_dir), previous=None, read_traces=False)
                ui.say(f"Report: {session_dir / 'report.html'} (section 'Candidate vs production')")
            except Exception as exc:  # the comparison stands; only the report page is missing
                ui.warn(f"could not update the report: {type(exc).__name__}: {exc}")
    raise typer.Exit(code)
