"""`trace2eval demo`: the whole pipeline on a sample agent, offline."""

from __future__ import annotations

import sys
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
        ui.say("")
        ui.say("Done. Look at the results:")
        ui.say(f"  the suite:        {session.evaluation_dir}")
        ui.say(f"  run it again:     cd {session.evaluation_dir} && python run_eval.py")
        ui.say(f"                    (any Python with mlflow installed, e.g. this one: {sys.executable})")
        ui.say(f"  what was found:   trace2eval status {session.dir}")
        ui.say(f"  in the MLflow UI: mlflow ui --backend-store-uri {uri}  (experiment {experiment_id})")
    _finish(session, passed)
