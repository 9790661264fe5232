"""`trace_source`: one source chosen from `--source`, and the MLflow source read end to end."""

from __future__ import annotations

import pytest

from trace2eval.config import SessionConfig
from trace2eval.errors import Trace2EvalError
from trace2eval.traces.sources import MlflowTraceSource, UnityCatalogTraceSource, trace_source


def _config(source: str = "mlflow") -> SessionConfig:
    return SessionConfig(experiment_id="1", tracking_uri="sqlite:///unused.db", source=source)


def test_the_factory_picks_the_source_the_setting_names():
    assert isinstance(trace_source(_config("mlflow")), MlflowTraceSource)
    uc = trace_source(_config("uc:cat.schema.prefix"))
    assert isinstance(uc, UnityCatalogTraceSource)
    assert uc.config.source == "uc:cat.schema.prefix"


def test_a_bad_source_is_a_clear_error():
    # The settings refuse a bad source; a config changed after validation meets the factory's check.
    bad = _config().model_copy(update={"source": "s3://bucket/traces"})
    with pytest.raises(Trace2EvalError) as caught:
        trace_source(bad)
    assert "unknown --source 's3://bucket/traces'" in str(caught.value)
    assert "uc:<catalog>.<schema>" in (caught.value.fix or "")
    with pytest.raises(Trace2EvalError, match="cannot read the Unity Catalog trace location"):
        trace_source(_config().model_copy(update={"source": "uc:only_a_catalog"}))


def test_the_mlflow_source_analyzes_and_fetches_real_traces(store):
    ids = [store.add(f"question {n}", f"answer {n}") for n in range(3)]
    config = SessionConfig(experiment_id=store.experiment_id, tracking_uri=store.uri)
    source = trace_source(config)
    result = source.analyze()
    assert result.analysis["trace_summary"]["total_analyzed"] == 3
    assert result.analysis["population"]["traces"] == 3
    assert result.skipped_note is None and result.points is None
    with source.fetching([ids[0], "tr-gone"]) as get:
        assert get(ids[0]).info.trace_id == ids[0]
        assert get("tr-gone") is None  # a deleted trace is no row, not a failed task
