"""Fill a local experiment with traces from the sample agent."""

from __future__ import annotations

import time
from pathlib import Path

from trace2eval.demo.agent import SampleAgent, sample_requests

DEMO_EXPERIMENT = "trace2eval-demo"
DEMO_TRACES = 60


def artifact_root(tracking_uri: str) -> Path | None:
    """Where experiments created in a local sqlite store keep their artifacts: beside the store.

    MLflow's default is `./mlruns` in whatever folder the process happens to run in; a demo run
    with `--out DIR` must leave nothing outside DIR.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :])
    return (db.parent / "mlartifacts").resolve()


def seed_experiment(
    tracking_uri: str, n: int = DEMO_TRACES, experiment_name: str = DEMO_EXPERIMENT, seed: int = 7
) -> str:
    """Write `n` traces (unless the experiment already has some) and return the experiment id."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        root = artifact_root(tracking_uri)
        client.create_experiment(experiment_name, artifact_location=str(root / experiment_name) if root else None)
    experiment = mlflow.set_experiment(experiment_name)
    if len(client.search_traces(locations=[experiment.experiment_id], max_results=1, include_spans=False)):
        return experiment.experiment_id
    agent = SampleAgent(mlflow, seed=seed)
    start = (int(time.time()) - n * 300) * 1_000_000_000  # one request every 5 minutes, ending now
    for i, request in enumerate(sample_requests(n, seed=seed)):
        agent.answer(request, start + i * 300 * 1_000_000_000)
    mlflow.flush_trace_async_logging()
    return experiment.experiment_id
