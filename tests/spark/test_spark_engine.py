"""The Spark engine on Unity-Catalog-layout tables written from real MLflow traces.

The reference is the local engine on the same traces: the two `analysis.json` must be equal.
"""

from __future__ import annotations

import json

import pytest
from environment import missing

from trace2eval.config import SessionConfig
from trace2eval.errors import SourceError

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _json(value):
    return json.loads(json.dumps(value, default=str))


def spark_analysis(location, uri, experiment_id, **settings):
    from trace2eval.spark.engine import analyze

    return _json(
        analyze(SessionConfig(experiment_id=experiment_id, tracking_uri=uri, source=str(location), **settings)).analysis
    )


def local_analysis(uri, experiment_id, **settings):
    from trace2eval.traces.sources import MlflowTraceSource

    config = SessionConfig(experiment_id=experiment_id, tracking_uri=uri, **settings)
    return _json(MlflowTraceSource(config).analyze().analysis)


def assert_same(spark_result, local_result):
    """Equal, but for the one sentence that says how each engine read the population."""
    assert spark_result["population"].pop("note").startswith("every matching trace, digested on the cluster")
    assert local_result["population"].pop("note").startswith("every matching trace, read without spans")
    assert set(spark_result) == set(local_result)
    for key in local_result:
        assert spark_result[key] == local_result[key], key


@pytest.mark.parametrize("name", ["demo", "demo_spans_only"])
def test_demo_agent_analysis_equals_the_local_engine(uc_tables, demo_store, name):
    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    spark_result = spark_analysis(uc_tables[name], uri, exp)
    assert spark_result["trace_summary"]["total_analyzed"] == 40 and spark_result["findings"]
    assert_same(spark_result, local_analysis(uri, exp))


def test_report_points_are_what_mlflow_lists(uc_tables, demo_store):
    from mlflow import MlflowClient

    from trace2eval.spark.engine import analyze

    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    points = analyze(SessionConfig(experiment_id=exp, tracking_uri=uri, source=str(uc_tables["demo"]))).points
    infos = [
        t.info
        for t in MlflowClient(uri).search_traces(
            locations=[exp], max_results=100, include_spans=False, order_by=["timestamp_ms DESC"]
        )
    ]
    assert points == {
        "timestamps_ms": [i.request_time for i in infos],
        "durations_ms": [float(i.execution_duration) for i in infos],
        "statuses": [i.state.value for i in infos],
    }


def test_hostile_traces_analysis_equals_the_local_engine_with_labels(uc_tables, hostile_store):
    uri, exp = hostile_store.uri, hostile_store.experiment_id
    spark_result = spark_analysis(uc_tables["hostile"], uri, exp, labels="user_ok")
    local_result = local_analysis(uri, exp, labels="user_ok")
    assert spark_result["meta_evaluation"]["labelled"] == 8
    assert_same(spark_result, local_result)
    text = json.dumps(spark_result)
    assert "dapi0123456789abcdef" not in text and "abcdefghijklmnopqrstuvwxyz0123" not in text
    assert len(text) < 200_000  # 2 MB payloads stay out of the analysis


def test_filters_and_since_select_what_mlflow_selects(uc_tables, demo_store):
    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    for flt in ("attributes.status = 'ERROR'", "span.type = 'TOOL' AND attributes.execution_time_ms > 20000"):
        spark_result = spark_analysis(uc_tables["demo"], uri, exp, filter_string=flt)
        local_result = local_analysis(uri, exp, filter_string=flt)
        assert 0 < spark_result["trace_summary"]["total_analyzed"] < 40, flt
        assert_same(spark_result, local_result)
    newest = local_analysis(uri, exp)["trace_summary"]["last_timestamp_ms"]
    with pytest.raises(SourceError, match="holds no traces matching"):
        spark_analysis(uc_tables["demo"], uri, exp, since_ms=newest)


def _windows(previous=None, **fields):
    """Two equal nightly windows, one for each engine (a window records what its engine read)."""
    from trace2eval.sessions.watermark import TraceWindow

    return TraceWindow(previous=previous, **fields), TraceWindow(previous=previous, **fields)


def test_nightly_window_reads_what_the_local_engine_reads(uc_tables, demo_store):
    """A nightly run over Unity Catalog tables honours the suite's watermark like the MLflow source:
    only traces past its start, minus the ids already processed in the overlap."""
    from mlflow import MlflowClient

    from trace2eval.sessions.watermark import Watermark
    from trace2eval.traces.sources import MlflowTraceSource, UnityCatalogTraceSource

    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    infos = sorted(
        MlflowClient(uri).search_traces(locations=[exp], max_results=100, include_spans=False),
        key=lambda t: (t.info.timestamp_ms, t.info.trace_id),
    )
    since = infos[15].info.timestamp_ms
    newer = [t.info.trace_id for t in infos if t.info.timestamp_ms > since]
    processed = frozenset(newer[:3])  # read by the last run inside its overlap
    config = SessionConfig(experiment_id=exp, tracking_uri=uri, source=str(uc_tables["demo"]))
    spark_window, local_window = _windows(since_ms=since, overlap_ms=0, skip_ids=processed)
    spark_result = _json(UnityCatalogTraceSource(config).analyze(spark_window).analysis)
    local_result = _json(
        MlflowTraceSource(SessionConfig(experiment_id=exp, tracking_uri=uri)).analyze(local_window).analysis
    )
    assert spark_result["trace_summary"]["total_analyzed"] == len(newer) - 3
    assert spark_window.skipped == local_window.skipped == 3
    assert spark_window.seen == local_window.seen and set(spark_window.seen) == set(newer) - processed
    # The MLflow index counts what the query matched, processed ids included; Spark what it kept.
    for result in (spark_result, local_result):
        result.pop("population"), result.pop("sample")
    assert_same_but_population(spark_result, local_result)

    # Nothing new since the last successful run: no analysis, no error, the watermark stays.
    last = Watermark(timestamp_ms=infos[-1].info.timestamp_ms, overlap_ms=0)
    spark_window, local_window = _windows(previous=last, since_ms=last.timestamp_ms, overlap_ms=0)
    assert UnityCatalogTraceSource(config).analyze(spark_window).analysis is None
    assert spark_window.seen == {}


def assert_same_but_population(spark_result, local_result):
    assert set(spark_result) == set(local_result)
    for key in local_result:
        assert spark_result[key] == local_result[key], key


def test_more_traces_than_max_traces_are_sampled_by_strata(uc_tables, demo_store):
    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    full = local_analysis(uri, exp)
    sampled = spark_analysis(uc_tables["demo"], uri, exp, max_traces=12)
    assert sampled["sample"].startswith("a stratified sample of 12 of 40 traces")
    assert sampled["sampling"]["population"] == 40 and sampled["sampling"]["sample"] == 12
    assert sum(s["sampled"] for s in sampled["sampling"]["strata"]) == 12
    assert sum(s["traces"] for s in sampled["sampling"]["strata"]) == 40
    assert sum(q["count"] for q in sampled["query_types"]) == 12  # findings and types come from the sample
    for section in ("agent", "trace_summary", "error_patterns", "tool_usage", "span_types", "request_shapes"):
        assert sampled[section] == full[section], section  # population sections cover every trace
    again = spark_analysis(uc_tables["demo"], uri, exp, max_traces=12)
    assert again == sampled  # the sample is reproducible


def test_duplicate_rows_and_unfinished_traces(spark, uc_tables, hostile_store):
    """At-least-once ingestion stores some spans twice; a running trace has no root yet."""
    from pyspark.sql import functions as F

    from trace2eval.spark.location import UCTraceLocation

    source = spark.table(uc_tables["hostile"].local_qualified(uc_tables["hostile"].spans_table))
    orphan = source.limit(1).withColumn("trace_id", F.lit("f" * 32)).withColumn("parent_span_id", F.lit("e" * 16))
    dirty = UCTraceLocation.parse("uc:main.agents.dirty")
    source.unionByName(source.sample(fraction=0.5, seed=1)).unionByName(orphan).write.mode("overwrite").saveAsTable(
        dirty.local_qualified(dirty.spans_table)
    )
    uri, exp = hostile_store.uri, hostile_store.experiment_id
    result = spark_analysis(dirty, uri, exp)
    assert result.pop("sampling")["skipped"]["incomplete"]["traces"] == 1
    assert result.pop("skipped_traces")["by_stage"] == {"incomplete": 1}  # reported as the local engine does
    assert_same(result, local_analysis(uri, exp))


def test_variant_attributes(spark, uc_tables, demo_store):
    """Newer tables store attributes as VARIANT."""
    if int(spark.version.split(".")[0]) < 4:
        missing("VARIANT needs Spark 4", "requirements-dev.txt pins pyspark 4")
    from trace2eval.spark.location import UCTraceLocation

    demo = uc_tables["demo"]
    variant = UCTraceLocation.parse("uc:main.agents.variant")
    spark.sql(
        f"CREATE TABLE {variant.local_qualified(variant.spans_table)} USING parquet AS "
        f"SELECT * EXCEPT (attributes), parse_json(to_json(attributes)) AS attributes "
        f"FROM {demo.local_qualified(demo.spans_table)}"
    )
    assert (
        spark.table(variant.local_qualified(variant.spans_table)).schema["attributes"].dataType.typeName() == "variant"
    )
    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    assert_same(spark_analysis(variant, uri, exp), local_analysis(uri, exp))


def test_digests_staged_in_a_scratch_table(spark, uc_tables, demo_store, monkeypatch):
    """Where DataFrames cannot be cached (serverless), digests are staged in a table, then dropped."""
    uri, exp = demo_store["uri"], demo_store["experiment_id"]
    monkeypatch.setenv("TRACE2EVAL_SPARK_SCRATCH", "main__agents")
    staged = spark_analysis(uc_tables["demo"], uri, exp)
    assert not [t for t in spark.catalog.listTables("main__agents") if t.name.startswith("trace2eval_digests")]
    assert_same(staged, local_analysis(uri, exp))
    monkeypatch.setenv("TRACE2EVAL_SPARK_SCRATCH", "main;drop")
    with pytest.raises(SourceError, match="cannot read TRACE2EVAL_SPARK_SCRATCH='main;drop'"):
        spark_analysis(uc_tables["demo"], uri, exp)


def test_missing_tables_name_what_was_tried(spark, demo_store):
    with pytest.raises(SourceError) as err:
        spark_analysis("uc:main.nowhere.bot", demo_store["uri"], demo_store["experiment_id"])
    message = str(err.value)
    assert "no spans table for uc:main.nowhere.bot" in message
    # Each name tried, with Spark's reason (a local session has no catalog called `main`).
    assert "`main`.`nowhere`.`bot_otel_spans` ([REQUIRES_SINGLE_PART_NAMESPACE]" in message
    assert "`main__nowhere`.`bot_otel_spans` ([TABLE_OR_VIEW_NOT_FOUND]" in message
    assert "main__nowhere.db/bot_otel_spans (no such folder)" in message
    assert "SELECT on the table" in message


def test_a_table_that_is_not_an_otel_spans_table(spark, demo_store):
    from trace2eval.spark.location import UCTraceLocation

    wrong = UCTraceLocation.parse("uc:main.agents.wrong")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{wrong.local_database}`")
    spark.createDataFrame([("a", 1)], "trace_id STRING, n INT").write.mode("overwrite").saveAsTable(
        wrong.local_qualified(wrong.spans_table)
    )
    with pytest.raises(SourceError, match="does not look like an OpenTelemetry spans table"):
        spark_analysis(wrong, demo_store["uri"], demo_store["experiment_id"])


def test_dataset_traces_rebuilt_from_span_rows(spark, uc_tables, hostile_store):
    from mlflow import MlflowClient
    from mlflow.entities import Trace

    from trace2eval.generate.dataset import Case, build_rows
    from trace2eval.spark.fetch import fetch_traces
    from trace2eval.spark.tables import open_tables

    client = MlflowClient(hostile_store.uri)
    ids = [t.info.trace_id for t in client.search_traces(locations=[hostile_store.experiment_id], max_results=100)]
    fetched = fetch_traces(spark, open_tables(spark, uc_tables["hostile"]), ids + ["tr-" + "0" * 32])
    assert set(fetched) == set(ids)
    assert all(isinstance(t, Trace) for t in fetched.values())
    cases = [Case(i) for i in ids]
    from_uc, _ = build_rows(cases, fetched.get)
    from_mlflow, _ = build_rows(cases, client.get_trace)
    assert _json(from_uc) == _json(from_mlflow)
