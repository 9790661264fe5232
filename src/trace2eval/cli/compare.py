"""`trace2eval compare`: run a session's (or the living suite's) evaluation against a candidate
version of the agent and gate on regressions against the production answers.

It runs the suite's own `run_eval.py --agent TARGET` (the same program CI runs), so what this
command says and what CI says cannot differ; the exit code is run_eval.py's: 0 no regression,
1 regression, 2 the candidate could not be evaluated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval import ui
from trace2eval.sessions.candidate import run_candidate, suite_folder
from trace2eval.sessions.files import write_json
from trace2eval.sessions.workdirs import session_workdir

CANDIDATE_FILE = "candidate.json"  # in a session's state/: the latest comparison, for the report


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
        extra = ["--agent-timeout", str(agent_timeout)] if agent_timeout else []
        extra += ["--agent-workers", str(agent_workers)] if agent_workers else []
        ui.say(f"Comparing {agent} with production on {evaluation} …")
        code, report, _ = run_candidate(evaluation, agent, env, judge_model, extra)
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
