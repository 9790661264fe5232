"""One local Spark session for every Spark test, and trace tables written from real MLflow traces."""

from __future__ import annotations

import pytest

SECRET = "dapi" + "0123456789abcdef" * 2  # fake; split so secret scanners stay quiet
EVIL = '"""\n__import__("os").system("touch PWNED")\n"""'


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """pyspark in local mode: 2 cores, small shuffles, a throwaway warehouse."""
    pytest.importorskip("pyspark")
    from trace2eval.spark.session import local_session

    session = local_session(str(tmp_path_factory.mktemp("spark-warehouse")), cores=2, shuffle_partitions=2)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def write_hostile_traces(store) -> list[str]:
    """Traces that stress the engines: secrets, code in text, huge payloads, errors, retries,
    nested sub-agents, multi-turn writes, non-ASCII, equal start times, nested token usage."""
    ids = []
    for i in range(6):
        ids.append(
            store.add(
                f"where is my order {i}?",
                f"Order {i} ships tomorrow.",
                tools=[{"name": "get_order", "args": {"order_id": 1000 + i}}],
            )
        )
    ids.append(
        store.add(
            EVIL,
            EVIL + f"\nuse key {SECRET} and Bearer abcdefghijklmnopqrstuvwxyz0123",
            tools=[{"name": "lookup", "args": {"q": EVIL}}],
        )
    )
    ids.append(
        store.add("show the export", "z" * 2_000_000, tools=[{"name": "export", "args": {}, "output": "z" * 2_000_000}])
    )
    ids.append(
        store.add("crash please", None, status="ERROR", exception=("ValueError", f"bad token {SECRET} at 0x7f3a2c91"))
    )
    ids.append(
        store.add({"messages": [{"role": "user", "content": f"my token is {SECRET}"}]}, "I can't use tokens, sorry.")
    )
    ids.append(
        store.add(
            "Cancel order 42",
            "Done.",
            user_turns=["Cancel order 42", "hmm, what?"],
            tools=[
                {"name": "get_order", "args": {"id": 42}},
                {"name": "cancel_order", "args": {"id": 42}},
                {"name": "cancel_order", "args": {"id": 42}},
            ],
        )
    )
    ids.append(
        store.add(
            "route me",
            "Both teams answered.",
            tools=[
                {"name": "sales_agent", "args": {"q": "x"}, "children": 2},
                {
                    "name": "supply_agent",
                    "args": {"q": "x"},
                    "children": 1,
                    "error": True,
                    "output": "Error: upstream timeout after 30000 ms",
                },
            ],
        )
    )
    ids.append(store.add("Où est ma commande ? 注文はどこ", "Elle arrive demain — 明日", duration_ms=4321))
    ids.append(
        store.add(
            "lookup failing",
            "Something went wrong, please try again later.",
            tools=[
                {"name": "search", "args": {"q": "a"}, "error": True, "output": {"error": "index down"}},
                {"name": "search", "args": {"q": "a"}, "error": True, "output": {"error": "index down"}},
                {"name": "search", "args": {"q": "a"}, "error": True, "output": {"error": "index down"}},
            ],
        )
    )
    ids.append(store.add("no output at all", None, root_outputs=None))
    ids += _tied_traces_with_nested_usage(store)
    return ids


def _tied_traces_with_nested_usage(store) -> list[str]:
    """Two traces starting at the same nanosecond (their order falls back to the trace id), whose
    spans all start together too, with token usage on a parent and on its children."""
    from mlflow.entities import SpanType

    mlflow = store.mlflow
    mlflow.set_tracking_uri(store.uri)
    t0 = 1_767_225_600_000_000_000 - 3_600_000_000_000
    ids = []
    for n in range(2):
        root = mlflow.start_span_no_context(
            name="agent",
            span_type=SpanType.AGENT,
            inputs={"query": f"tied {n}"},
            start_time_ns=t0,
            experiment_id=store.experiment_id,
        )
        parent = mlflow.start_span_no_context(
            name="planner",
            span_type=SpanType.CHAT_MODEL,
            parent_span=root,
            start_time_ns=t0,
            inputs={"messages": [{"role": "user", "content": f"tied {n}"}]},
            attributes={"mlflow.chat.tokenUsage": {"input_tokens": 50, "output_tokens": 5, "total_tokens": 55}},
        )
        for k in range(2):
            child = mlflow.start_span_no_context(
                name=f"step_{k}",
                span_type=SpanType.LLM,
                parent_span=parent,
                start_time_ns=t0,
                inputs={"messages": [{"role": "user", "content": f"step {k}"}]},
                attributes={
                    "mlflow.chat.tokenUsage": {"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
                    "retries": 0,
                },
            )
            # Same start as their parent and each other; they end one after the other.
            child.end(outputs={"content": f"step {k} done"}, end_time_ns=t0 + (k + 1) * 1_000)
        parent.end(outputs={"content": "planned"}, end_time_ns=t0 + 2_000_000)
        root.end(outputs={"response": f"tied answer {n}."}, end_time_ns=t0 + 3_000_000)
        ids.append(root.trace_id)
    return ids


@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory):
    from tracefactory import TraceStore

    store = TraceStore(tmp_path_factory.mktemp("hostile-store") / "mlflow.db")
    ids = write_hostile_traces(store)
    # Reviewer labels on some traces, for meta-evaluation on both engines.
    from mlflow.entities import AssessmentSource

    for n, trace_id in enumerate(ids[:8]):
        store.mlflow.log_feedback(
            trace_id=trace_id,
            name="user_ok",
            value=n % 3 != 0,
            source=AssessmentSource(source_type="HUMAN", source_id="reviewer"),
        )
    return store


@pytest.fixture(scope="session")
def uc_tables(spark, demo_store, hostile_store):
    """Unity-Catalog-layout tables in the local warehouse, written from the MLflow stores."""
    from trace2eval.spark.export import export_experiment
    from trace2eval.spark.location import UCTraceLocation

    locations = {
        "demo": UCTraceLocation.parse("uc:main.agents.demo"),
        "demo_spans_only": UCTraceLocation.parse("uc:main.agents.demo_spans_only"),
        "hostile": UCTraceLocation.parse("uc:main.agents.hostile"),
    }
    export_experiment(spark, demo_store["uri"], demo_store["experiment_id"], locations["demo"])
    export_experiment(
        spark, demo_store["uri"], demo_store["experiment_id"], locations["demo_spans_only"], metadata=False
    )
    export_experiment(spark, hostile_store.uri, hostile_store.experiment_id, locations["hostile"])
    return locations
