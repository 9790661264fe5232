"""Where the experiment that traces trace2eval's own LLM sessions keeps its artifacts."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from trace2eval.llm.tracing import _experiment_id


def test_llm_sessions_experiment_keeps_artifacts_beside_a_local_store(store, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow's default would be ./mlruns here
    experiment_id = _experiment_id(store.uri, "trace2eval-llm-sessions")
    location = MlflowClient(store.uri).get_experiment(experiment_id).artifact_location
    assert Path(location.removeprefix("file://")) == (tmp_path / "mlartifacts" / "trace2eval-llm-sessions").resolve()
    assert _experiment_id(store.uri, "trace2eval-llm-sessions") == experiment_id  # found again, not recreated
    assert list(elsewhere.iterdir()) == []
