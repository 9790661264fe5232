"""The Spark engine groups per-turn traces into conversations as the local engine does: the UC
trace tables carry `mlflow.trace.session` in the trace metadata."""

from __future__ import annotations

import pytest
from test_spark_engine import assert_same, local_analysis, spark_analysis

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_conversations_equal_the_local_engine(spark, tmp_path):
    from tracefactory import TraceStore

    from trace2eval.spark.export import export_experiment
    from trace2eval.spark.location import UCTraceLocation

    store = TraceStore(tmp_path / "mlflow.db")
    lookup = [{"name": "get_order", "args": {"id": 1}}]
    for i in range(4):
        store.add_conversation(
            f"chat-{i}",
            [
                (f"Where is my order {i}?", "Let me check.", lookup),
                ("Yes, go ahead.", "Done.", []),
                ("Thanks", "Bye", []),
            ],
        )
    store.add("What are your opening hours?", "9 to 5.")
    location = UCTraceLocation.parse("uc:main.agents.conversations")
    export_experiment(spark, store.uri, store.experiment_id, location)
    spark_result = spark_analysis(location, store.uri, store.experiment_id)
    assert spark_result["conversations"]["count"] == 5 and spark_result["conversations"]["with_session"] == 4
    assert_same(spark_result, local_analysis(store.uri, store.experiment_id))
