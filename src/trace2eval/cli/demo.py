"""`trace2eval demo`: the whole pipeline on a sample agent, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from trace2eval import ui
from trace2eval.cli.options import Quiet
from trace2eval.config import SessionConfig
from trace2eval.cli.run import _finish
from trace2eval.demo.seed import DEMO_TRACES, seed_experiment
from trace2eval.sessions import runner


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo store and sessions.")] = Path(
        "trace2eval-demo"
    ),
    traces: Annotated[int, typer.Option("--traces", help="How many sample traces to write.")] = DEMO_TRACES,
    quiet: Quiet = False,
) -> None:
    """Seed a local MLflow store with a sample agent's traces and generate its evaluation suite.

    Example: trace2eval demo

    Needs nothing but the install: no network, no LLM, no Databricks. Everything it writes (the
    store, its MLflow artifacts, the sessions) stays under --out.
    """
    ui.set_quiet(quiet)
    out.mkdir(parents=True, exist_ok=True)
    store = (out / "mlflow.db").resolve()
    uri = f"sqlite:///{store}"
    ui.say(f"Writing {traces} traces from the sample agent to {store} …")
    experiment_id = seed_experiment(uri, n=traces)
    config = SessionConfig.from_inputs(experiment_id, uri)
    session = runner.create_session(config, out / "sessions")
    ui.say(f"Session {session.dir}")
    passed = runner.run_all(session)
    if passed:
        compare_candidates(session.evaluation_dir, uri, experiment_id)
        ui.say("")
        ui.say("Done. Look at the results:")
        ui.say(f"  the suite:        {session.evaluation_dir}")
        ui.say(f"  run it again:     cd {session.evaluation_dir} && python run_eval.py")
        ui.say(f"                    (any Python with mlflow installed, e.g. this one: {sys.executable})")
        ui.say(f"  what was found:   trace2eval status {session.dir}")
        ui.say(f"  a new version:    trace2eval compare {session.dir} --agent path/to/agent.py:predict")
        ui.say(f"  in the MLflow UI: mlflow ui --backend-store-uri {uri}  (experiment {experiment_id})")
    _finish(session, passed)


# The two candidate versions the demo ends with: (function in demo/candidates.py, what it changes).
CANDIDATES = (
    ("one_specialist", "routes each question to the one specialist it needs"),
    ("no_tools", "answers without consulting its specialists"),
)


def compare_candidates(evaluation: Path, uri: str, experiment_id: str) -> list[int]:
    """Evaluate the two candidate versions against production with the suite's own run_eval.py."""
    from trace2eval.demo import candidates

    codes = []
    for name, what in CANDIDATES:
        ui.say("")
        ui.say(f"Candidate {name!r} ({what}): python run_eval.py --agent demo/candidates.py:{name}")
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results.json"
            env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": str(experiment_id)}
            proc = subprocess.run(
                [sys.executable, "run_eval.py", "--no-judges", "--agent", f"{candidates.__file__}:{name}"]
                + ["--results-json", str(results)],
                cwd=evaluation,
                env=env,
                capture_output=True,
                text=True,
            )
            report = json.loads(results.read_text()) if results.exists() else {}
        codes.append(proc.returncode)
        compared = report.get("candidate", {}).get("scorers", [])
        for c in compared:
            if c.get("regressed") or c.get("fixed"):
                ui.say(
                    f"  {c['scorer']}: {c['production']:.0%} -> {c['candidate']:.0%} "
                    f"({c['regressed']} row(s) lost, {c['fixed']} won) {c['verdict']}"
                )
        verdict = {0: "gate passed (exit 0)", 1: "gate FAILED: a regression (exit 1)"}.get(
            proc.returncode, f"could not evaluate (exit {proc.returncode})"
        )
        ui.say(f"  -> {verdict}")
        if proc.returncode not in (0, 1):
            ui.say("  " + (proc.stderr.strip().splitlines() or ["no error output"])[-1])
    return codes
