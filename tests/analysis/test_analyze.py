from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.querytypes import cluster_requests
from trace2eval.analysis.stats import outlier_threshold, percentile
from trace2eval.traces.checks import run_check
from trace2eval.traces.source import TraceQuery, iter_digests, open_client


def test_percentiles():
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert outlier_threshold([10] * 20 + [100], 95, 2.0) == 20  # never below 2x the median


def test_findings_have_evidence_that_fails_their_check(demo_store):
    client = open_client(demo_store["uri"], demo_store["experiment_id"])
    digests = {d["trace_id"]: d for d in iter_digests(client, TraceQuery(demo_store["experiment_id"]))}
    analyzer = Analyzer()
    for d in digests.values():
        analyzer.add(d)
    analysis = analyzer.finish()
    ids = {f["id"] for f in analysis["findings"]}
    # The sample agent times out in the warehouse and sometimes calls both specialists.
    assert {"error_traces", "extra_routing"} <= ids
    assert analysis["agent"]["sub_agents"] == ["customer_sales", "supply_chain"]
    for f in analysis["findings"]:
        assert f["evidence"], f["id"]
        for tid in f["evidence"]:
            assert not run_check(f["check"], digests[tid], f["params"])[0], (f["id"], tid)
        for tid in f["counter_examples"]:
            assert run_check(f["check"], digests[tid], f["params"])[0], (f["id"], tid)
        assert f["threshold_rationale"]
    timeouts = [p for p in analysis["error_patterns"] if p["name"] == "TimeoutError"]
    assert timeouts and timeouts[0]["evidence"]
    summary = analysis["trace_summary"]
    assert summary["total_analyzed"] == 40
    assert summary["by_status"]["ERROR"] == summary["error_count"] > 0
    assert set(analysis["case_index"]) >= set(analysis["samples"]["random"])


def test_query_types_separate_distinct_requests():
    texts = [f"what is the sales pipeline in region {i}" for i in range(10)] + [
        f"inventory of widgets in warehouse {i}" for i in range(10)
    ]
    types = cluster_requests(texts)
    assert len(types.names) == 2
    assert len(set(types.labels[:10])) == 1 and len(set(types.labels[10:])) == 1
    assert types.labels[0] != types.labels[10]


def test_few_requests_make_one_type():
    assert cluster_requests(["a", "b"]).names == ["all_requests"]


def test_request_types_do_not_depend_on_the_order_requests_come_in():
    """k-means depends on the order of its input, and a store returns traces with equal timestamps in any
    order: the same requests must still give the same types."""
    import random

    rng = random.Random(1)
    words = "cancel order refund change address flight booking seat bag upgrade payment card delayed lost late"
    words += " return exchange item size"
    texts = [" ".join(rng.sample(words.split(), 4)) for _ in range(60)]

    def partition(requests, types):
        return {frozenset(t for t, label in zip(requests, types.labels) if label == k) for k in set(types.labels)}

    first = partition(texts, cluster_requests(texts))
    assert len(first) > 1
    for s in range(3):
        shuffled = texts[:]
        random.Random(s).shuffle(shuffled)
        assert partition(shuffled, cluster_requests(shuffled)) == first


def test_the_random_sample_is_the_same_conversations_on_a_reload():
    """A reload gives every trace a new id and the store may return them in another order: the
    conversations sampled for an LLM stay the same."""
    import random

    from trace2eval.analysis.analyze import samples

    rows = [
        {"trace_id": f"tr-{i}", "request": f"question {i}", "answer": f"answer {i}", "duration_ms": 10.0 + i}
        for i in range(40)
    ]
    for r in rows:
        r.update(status="OK", has_answer=True)
    picked = {int(t.split("-")[1]) for t in samples(rows, seed=0)["random"]}
    reloaded = [{**r, "trace_id": f"new-{39 - i}"} for i, r in enumerate(rows)]
    random.Random(3).shuffle(reloaded)
    by_id = {r["trace_id"]: r for r in reloaded}
    again = {int(by_id[t]["request"].split()[1]) for t in samples(reloaded, seed=0)["random"]}
    assert 0 < len(picked) < len(rows) and again == picked
