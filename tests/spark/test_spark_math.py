"""The numbers behind exact equality: percentiles from ranks, CPython's float sum, the sample allocation."""

from __future__ import annotations

import random

import pytest

from trace2eval.analysis.stats import percentile, summary
from trace2eval.spark.population import RankedValues, python_percentile
from trace2eval.spark.sample import allocate


def test_percentile_from_two_ranks_is_the_analyzers_percentile():
    rng = random.Random(5)
    for n in (1, 2, 3, 7, 40, 101):
        values = sorted(round(rng.uniform(0, 5000), 1) for _ in range(n))
        for q in (0, 50, 90, 95, 99, 100):
            assert python_percentile(values.__getitem__, n, q) == percentile(values, q)
    assert python_percentile(lambda i: 1, 0, 50) == 0.0


def test_ranked_values_read_runs_of_equal_values():
    ranked = RankedValues(5, [(0, 2, 10), (3, 3, 20), (4, 4, 30)])  # 10, 10, 10, 20, 30
    assert ranked.percentile(50) == percentile([10, 10, 10, 20, 30], 50)
    assert ranked.percentile(90) == percentile([10, 10, 10, 20, 30], 90)
    assert ranked.max == 30
    with pytest.raises(KeyError):
        RankedValues(5, [(0, 0, 1)])(3)


def test_allocation_is_proportional_with_a_floor():
    counts = {
        ("OK", 0, "a"): 900,
        ("OK", 1, "a"): 80,
        ("ERROR", 0, "a"): 15,
        ("ERROR", 1, "b"): 3,
        ("OTHER", 2, "c"): 2,
    }
    alloc = allocate(counts, 100, floor=5)
    assert sum(alloc.values()) == 100
    assert alloc[("ERROR", 1, "b")] == 3 and alloc[("OTHER", 2, "c")] == 2  # small strata: all of them
    assert alloc[("ERROR", 0, "a")] >= 5
    assert alloc[("OK", 0, "a")] > alloc[("OK", 1, "a")] > alloc[("ERROR", 0, "a")]
    assert all(0 <= alloc[k] <= counts[k] for k in counts)
    assert allocate(counts, 2000) == counts  # everything fits
    many = {("OK", i, "x"): 10 for i in range(30)}  # floors alone exceed the budget: plain proportional
    spread = allocate(many, 20, floor=5)
    assert sum(spread.values()) == 20 and max(spread.values()) == 1
    assert allocate(many, 20) == allocate(dict(reversed(list(many.items()))), 20)  # order-independent


@pytest.mark.spark
@pytest.mark.slow
def test_spark_fold_sums_floats_exactly_like_python(spark):
    from pyspark.sql import functions as F

    from trace2eval.spark.population import python_sum_expr

    rng = random.Random(11)
    cases = [
        [0.1, 0.2, 0.3],
        [1e16, 1.0, -1e16],
        [round(rng.uniform(0, 30000), 1) for _ in range(500)],
        [rng.choice([0.1, 0.7, 1234.5, 1e-3]) for _ in range(300)],
    ]
    df = spark.createDataFrame([(i, c) for i, c in enumerate(cases)], "i INT, v ARRAY<DOUBLE>")
    got = {r["i"]: r["s"] for r in df.select("i", python_sum_expr(F.col("v")).alias("s")).collect()}
    for i, values in enumerate(cases):
        assert got[i] == sum(values), values[:5]  # bit for bit


@pytest.mark.spark
@pytest.mark.slow
def test_spark_order_statistics_match_the_analyzers_summary(spark):
    from pyspark.sql import functions as F

    from trace2eval.spark.population import _summary, ranked_values

    rng = random.Random(2)
    rows = [
        (g, float(round(rng.expovariate(1 / 900), 1)) if g != "ties" else float(rng.choice([5, 5, 5, 7])))
        for g in ("a", "b", "ties")
        for _ in range(rng.randint(1, 300))
    ]
    rows.append(("single", 42.0))
    df = spark.createDataFrame(rows, "g STRING, v DOUBLE")
    ranked = ranked_values(df, "v", ["g"])
    for g in ("a", "b", "ties", "single"):
        values = [v for k, v in rows if k == g]
        assert _summary(len(values), sum(values), ranked[(g,)]) == summary(values)
    totals = df.groupBy("g").agg(F.count("*").alias("n")).collect()
    assert {r["g"]: r["n"] for r in totals} == {g: ranked[(g,)].n for g in ("a", "b", "ties", "single")}
