"""A suite generated offline from 12 order-support traces, whose dataset holds every one of them
(rows a user added by hand), for the tests that run it against candidate versions of the agent
(tests/generate/support_candidate.py)."""

from __future__ import annotations

import json
from pathlib import Path

CANDIDATE = Path(__file__).parent / "generate" / "support_candidate.py"


def make_suite(folder: Path):
    """(session, store) in `folder`: mlflow.db and sessions/<id>/evaluation/."""
    from mlflow import MlflowClient

    from tracefactory import TraceStore, add_support_traces
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    # The experiment keeps its artifacts (the candidate runs log their comparison) beside the store.
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").create_experiment(
        "agent-prod", artifact_location=str(folder / "artifacts")
    )
    store = TraceStore(folder / "mlflow.db")
    add_support_traces(store, 0, 12)
    session = runner.create_session(SessionConfig.from_inputs(store.experiment_id, store.uri), folder / "sessions")
    assert runner.run_all(session)
    rows = []
    for trace in MlflowClient(store.uri).search_traces(locations=[store.experiment_id], max_results=100):
        root = next(s for s in trace.data.spans if s.parent_id is None)
        if root.name == "agent":
            rows.append(
                {"inputs": root.inputs, "outputs": root.outputs, "metadata": {"source_trace": trace.info.trace_id}}
            )
    assert len(rows) == 12
    dataset = session.evaluation_dir / "eval_dataset.json"
    dataset.write_text(json.dumps({**json.loads(dataset.read_text()), "rows": rows}))
    return session, store


def fresh_copy(folder: Path, session, experiment_id: str, into: Path) -> tuple[Path, str, str]:
    """A generated suite copied for one test to run (and change) on its own: (evaluation folder,
    tracking URI of its own copy of the store, experiment id)."""
    import shutil

    shutil.copy(folder / "mlflow.db", into / "mlflow.db")
    evaluation = into / "evaluation"
    shutil.copytree(session.evaluation_dir, evaluation, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    return evaluation, f"sqlite:///{into / 'mlflow.db'}", experiment_id
