"""The generation as an MLflow run, and the dataset as an MLflow evaluation dataset, on real stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessioncopy import copy_session
from trace2eval.errors import Trace2EvalError
from trace2eval.report import publish
from trace2eval.report.dataset_registry import dataset_name, records_from_rows
from trace2eval.report.generation_run import KIND_TAG, SESSION_TAG


def client_for(session):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=session.config().tracking_uri)


def generation_runs(session):
    return client_for(session).search_runs(
        [session.config().experiment_id],
        filter_string=f"tags.`{SESSION_TAG}` = '{session.id}' AND tags.`{KIND_TAG}` = 'generation'",
    )


def test_runner_published_the_finished_session(demo_session):
    """What `trace2eval run` leaves behind: a finished generation run and a registered dataset."""
    state = json.loads((demo_session.state_dir / "mlflow_publish.json").read_text())
    (run,) = generation_runs(demo_session)
    assert run.info.run_id == state["generation_run"]["run_id"] and run.info.status == "FINISHED"
    rows = json.loads(demo_session.dataset_json.read_text())["rows"]
    distinct_inputs = {json.dumps(r["inputs"], sort_keys=True) for r in rows}
    assert state["dataset"]["records"] == len(distinct_inputs) == len(rows) - state["dataset"]["same_inputs_merged"]
    assert run.info.run_id in (demo_session.dir / "report.html").read_text()


def test_generation_run_has_settings_counts_and_the_session(session_copy):
    result = publish(session_copy)
    assert not result.problems, result.problems
    client = client_for(session_copy)
    run = client.get_run(result.run_id)
    analysis = session_copy.analysis().model_dump()
    validation = session_copy.validation().model_dump()
    assert run.info.status == "FINISHED"
    assert run.data.params["session_id"] == session_copy.id and run.data.params["engine"] == "deterministic"
    assert run.data.metrics["traces/total_analyzed"] == analysis["trace_summary"]["total_analyzed"]
    assert run.data.metrics["findings/count"] == len(analysis["findings"])
    assert run.data.metrics["dataset/rows"] == len(json.loads(session_copy.dataset_json.read_text())["rows"])
    assert run.data.metrics["validation/passed"] == 1.0
    for name, value in validation["metrics"].items():
        assert run.data.metrics[f"eval/{name}"] == pytest.approx(value)
    assert run.data.tags["trace2eval.validation_run_id"] == validation["run_id"]
    assert "validation: **passed**" in run.data.tags["mlflow.note.content"]
    top = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"report.html", "session"} <= top
    inside = {a.path for a in client.list_artifacts(result.run_id, "session")}
    assert {"session/eval_tasks.json", "session/state", "session/evaluation", "session/report.html"} <= inside
    local = Path(client.download_artifacts(result.run_id, "session/state/analysis.json"))
    assert json.loads(local.read_text())["findings"] == analysis["findings"]


def test_publishing_twice_updates_instead_of_duplicating(session_copy):
    first = publish(session_copy)
    second = publish(session_copy)
    assert first.run_id == second.run_id
    assert len(generation_runs(session_copy)) == 1
    assert first.dataset["dataset_id"] == second.dataset["dataset_id"]
    assert second.dataset["records"] == first.dataset["records"]


def test_dataset_round_trips_through_mlflow_genai_datasets(session_copy):
    import mlflow
    from mlflow.genai.datasets import get_dataset, search_datasets

    result = publish(session_copy)
    rows = json.loads(session_copy.dataset_json.read_text())["rows"]
    mlflow.set_tracking_uri(session_copy.config().tracking_uri)
    try:
        found = search_datasets(experiment_ids=[session_copy.config().experiment_id])
        assert [d.dataset_id for d in found] == [result.dataset["dataset_id"]]
        df = get_dataset(dataset_id=result.dataset["dataset_id"]).to_df()
    finally:
        mlflow.set_tracking_uri(None)
    # MLflow keys records by inputs: rows with the same request merge into one record.
    assert len(df) == len({json.dumps(r["inputs"], sort_keys=True) for r in rows}) == result.dataset["records"]
    by_trace = {r["metadata"]["source_trace"]: r for r in rows}
    for _, record in df.iterrows():
        source = record["source"]
        trace_id = source.source_data["trace_id"]
        assert str(getattr(source.source_type, "value", source.source_type)) == "TRACE"
        row = by_trace[trace_id]  # lineage: every record names the production trace it came from
        assert record["inputs"] == row["inputs"]
        assert record["tags"]["trace2eval.case_type"] == row["metadata"]["case_type"]
    # The linked traces exist in the experiment.
    client = client_for(session_copy)
    assert client.get_trace(next(iter(by_trace))).info.trace_id == next(iter(by_trace))


def test_a_later_session_merges_into_the_same_dataset(session_copy, tmp_path, demo_store):
    first = publish(session_copy)
    later = copy_session(session_copy, demo_store["folder"], tmp_path, name="2999-01-01_000000")
    rows = json.loads(later.dataset_json.read_text())
    rows["rows"] = rows["rows"][:3] + [{**rows["rows"][0], "inputs": {"query": "a request no session saw before"}}]
    later.dataset_json.write_text(json.dumps(rows))
    second = publish(later)
    assert second.dataset["dataset_id"] == first.dataset["dataset_id"]
    assert second.dataset["records"] == first.dataset["records"] + 1  # overlap merged, one new record


def test_publish_problems_are_reported_not_raised(session_copy, tmp_path):
    config = json.loads(session_copy.config_file.read_text())
    config["tracking_uri"] = f"sqlite:///{tmp_path / 'nowhere.db'}"
    session_copy.config_file.write_text(json.dumps(config))
    result = publish(session_copy)
    assert result.report is not None and result.run_id is None
    assert result.problems and "no MLflow tracking store" in result.problems[0]


def test_dataset_names(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACE2EVAL_DATASET_NAME", raising=False)
    assert dataset_name("sqlite:///m.db", "12", tmp_path) == "trace2eval-experiment-12"
    volume = Path("/Volumes/main/agents/evals/sessions/2026-01-01_000000")
    assert dataset_name("databricks", "12", volume) == "main.agents.trace2eval_eval_12"
    with pytest.raises(Trace2EvalError, match="TRACE2EVAL_DATASET_NAME=catalog.schema.table"):
        dataset_name("databricks", "12", tmp_path)
    monkeypatch.setenv("TRACE2EVAL_DATASET_NAME", "prod.agents.support_eval")
    assert dataset_name("databricks", "12", tmp_path) == "prod.agents.support_eval"
    monkeypatch.setenv("TRACE2EVAL_DATASET_NAME", "not a table; drop")
    with pytest.raises(Trace2EvalError, match="not a Unity Catalog table name"):
        dataset_name("databricks", "12", tmp_path)


def test_records_keep_their_source_trace():
    rows = [
        {
            "inputs": {"q": "hi"},
            "outputs": {"a": "yo"},
            "expectations": {"expected_facts": ["x"]},
            "metadata": {
                "source_trace": "tr-1",
                "case_type": "failure",
                "findings": ["f1", "f2"],
                "query_type": "greet",
            },
        },
        {"inputs": "bare text", "outputs": None, "metadata": {}},
    ]
    first, second = records_from_rows(rows, "s1")
    assert first["source"] == {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}}
    assert first["tags"]["trace2eval.findings"] == "f1,f2" and first["expectations"] == {"expected_facts": ["x"]}
    assert second["inputs"] == {"request": "bare text"} and "source" not in second
