"""The span-free index, the shard plan (all traces, or a stratified sample) and parallel digesting."""

import json
import subprocess
import sys

import pytest

from trace2eval.traces.reader import TraceIndex, plan_shards, read_digests, scan_index
from trace2eval.traces.source import TraceQuery, open_client


def _index(timestamps, errors=()):
    index = TraceIndex()
    for i, ts in enumerate(timestamps):
        index.timestamps.append(ts)
        index.errors.append(i in errors)
    return index


def test_shards_partition_every_trace_exactly_once():
    ts = [5, 5, 5, 1, 2, 3, 9, 9, 7, 8, 100, 100]
    plan = plan_shards(_index(ts), None, shard_size=3)
    assert plan.expected == plan.total == len(ts)
    covered = sorted(t for t in ts for s in plan.shards if s.lo_ms <= t < s.hi_ms)
    assert covered == sorted(ts)  # no gaps, no overlaps, ties kept in one shard
    assert "all 12 traces" in plan.note


def test_sample_spreads_over_time_and_adds_errors():
    ts = list(range(1000))
    errors = {990, 991, 992, 993, 994, 995}  # all at the very end
    plan = plan_shards(_index(ts, errors), max_traces=100, shard_size=10)
    windows = [s for s in plan.shards if s.status is None]
    assert windows[0].lo_ms < 100 and windows[-1].hi_ms > 850  # not "the newest N"
    assert 80 <= sum(s.hi_ms - s.lo_ms for s in windows) <= 100
    # Every error is in the sample: in a picked window or in an error-only shard of another one.
    assert all(any(s.lo_ms <= t < s.hi_ms for s in plan.shards) for t in errors)
    assert "sample of about" in plan.note and "of 1000 traces" in plan.note


_PARALLEL_CHECK = """
import json, sys
from trace2eval.traces.reader import plan_shards, read_digests, scan_index
from trace2eval.traces.source import TraceQuery, open_client
uri, experiment_id, method = sys.argv[1:]
query = TraceQuery(experiment_id)
index = scan_index(open_client(uri, experiment_id), query)
plan = plan_shards(index, None, shard_size=7)
serial = list(read_digests(uri, query, plan, workers=1))
parallel = list(read_digests(uri, query, plan, workers=2, method=method))
print(json.dumps({"count": index.count, "errors": sum(index.errors), "error_status": index.statuses.get("ERROR", 0),
                  "serial": len(serial), "ids": len({d["trace_id"] for d in serial}), "equal": serial == parallel}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_parallel_digests_equal_serial_ones(demo_store, method):
    # In a fresh interpreter: forking is only safe (and only chosen) before pyspark is loaded,
    # and this pytest process may have loaded it for the Spark tests.
    out = subprocess.run(
        [sys.executable, "-c", _PARALLEL_CHECK, demo_store["uri"], demo_store["experiment_id"], method],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["count"] == 40 and result["errors"] == result["error_status"]
    assert result["serial"] == 40 and result["ids"] == 40 and result["equal"]


@pytest.mark.slow
def test_workers_are_not_forked_while_a_spark_session_lives():
    pytest.importorskip("pyspark")
    # A forked child would share the parent's py4j socket (seen as KeyError deep in py4j).
    code = (
        "import trace2eval.traces.reader as r; print(r.start_method()); import pyspark; print(r.start_method()); "
        "from pyspark.sql import SparkSession; s = SparkSession.builder.master('local[1]').getOrCreate(); "
        "print(r.start_method()); s.stop(); print(r.start_method())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["fork", "fork", "spawn", "fork"], out.stderr[-2000:]


def test_sampled_read_respects_the_budget(demo_store):
    client = open_client(demo_store["uri"], demo_store["experiment_id"])
    query = TraceQuery(demo_store["experiment_id"])
    plan = plan_shards(scan_index(client, query), max_traces=20, shard_size=5)
    digests = list(read_digests(demo_store["uri"], query, plan, workers=1))
    assert 10 <= len(digests) <= 24 and len(digests) == plan.expected


def test_traces_written_by_evaluate_are_not_production_traffic(store):
    from mlflow.genai.scorers import scorer

    store.add("real question", "real answer")
    store.add("another real one", "answer")

    @scorer
    def always(outputs):
        return True

    store.mlflow.set_experiment(experiment_id=store.experiment_id)
    store.mlflow.genai.evaluate(data=[{"inputs": {"q": "synthetic"}, "outputs": {"r": "x"}}], scorers=[always])
    client = open_client(store.uri, store.experiment_id)
    query = TraceQuery(store.experiment_id)
    assert len(client.search_traces(locations=[store.experiment_id])) == 3  # evaluate logged a stand-in
    index = scan_index(client, query)
    digests = list(read_digests(store.uri, query, plan_shards(index, None), workers=1))
    assert index.count == 2 and sorted(d["request"] for d in digests) == ["another real one", "real question"]
