"""Conversations: per-turn traces grouped by their `mlflow.trace.session` metadata.

A chat agent behind an endpoint is traced once per request, so one conversation is several traces.
The analysis groups them (streaming: digests, not traces), names request types per conversation,
the dataset keeps a conversation's turns together, and the generated session-level scorers run in
`mlflow.genai.evaluate`, which hands them the turns of one session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tracefactory import TraceStore

from trace2eval.analysis.analyze import Analyzer
from trace2eval.errors import SessionError
from trace2eval.generate.dataset import build_rows, select_cases
from trace2eval.generate.scorers import render_scorers, specs_from_analysis
from trace2eval.state.dataset import DATASET_VERSION, EvalDataset, parse_dataset
from trace2eval.traces.source import TraceQuery, fetch_row_trace, iter_digests, open_client

SNAPSHOT = Path(__file__).parents[1] / "data" / "suite-0.1.0"

LOOKUP = [{"name": "get_order", "args": {"id": 7}, "output": {"status": "shipped"}}]
FAILING = [{"name": "update_address", "args": {"id": 7}, "output": {"error": "db down"}, "error": True}]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Six support conversations of three turns (orders or refunds), the same go-ahead in each,
    and two traces without session metadata."""
    store = TraceStore(tmp_path_factory.mktemp("conv") / "mlflow.db")
    sessions = {}
    for i in range(6):
        topic = (
            f"Where is my order {i}? It has not arrived at my address."
            if i % 2
            else f"I want a refund for the broken blender from invoice {i}."
        )
        sessions[f"conv-{i}"] = store.add_conversation(
            f"conv-{i}",
            [
                (topic, "Let me look that up.", LOOKUP),
                ("Yes, go ahead.", "Done, I changed it.", FAILING if i < 2 else LOOKUP),
                ("Thanks!", "You're welcome.", []),
            ],
        )
    loose = [
        store.add_turn(None, [{"role": "user", "content": f"What are your opening hours on day {d}?"}], "9-5")
        for d in range(2)
    ]
    analysis, digests = _analysis(store)
    return {"store": store, "sessions": sessions, "loose": loose, "analysis": analysis, "digests": digests}


def _analysis(store: TraceStore) -> tuple[dict, list[dict]]:
    client = open_client(store.uri, store.experiment_id)
    digests = list(iter_digests(client, TraceQuery(store.experiment_id)))
    analyzer = Analyzer()
    for d in digests:
        analyzer.add(d)
    return analyzer.finish(), digests


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_turns_group_into_conversations_in_time_order(store):
    analysis, digests = store["analysis"], store["digests"]
    by_id = {d["trace_id"]: d for d in digests}
    assert by_id[store["sessions"]["conv-3"][0]]["session"] == "conv-3"
    assert "session" not in by_id[store["loose"][0]]  # no metadata: the digest is as it always was
    section = analysis["conversations"]
    assert section["has_session_metadata"] is True
    assert section["count"] == 8 and section["with_session"] == 6 and section["multi_turn"] == 6
    assert section["turns_per_conversation"]["max"] == 3
    assert section["unit"] == "conversation"  # findings are measured per conversation
    for session, turns in section["turns"].items():  # every cited conversation, turns oldest first
        assert turns == store["sessions"][session]
    failing = next(f for f in analysis["findings"] if f["id"] == "tool_failures")
    assert failing["prevalence"]["traces"] == 2 and failing["conversations"] == 2


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_follow_up_turns_take_their_conversations_request_type(store):
    analysis = store["analysis"]
    type_of = {tid: facts["query_type"] for tid, facts in analysis["case_index"].items()}
    for turns in store["sessions"].values():
        cited = {type_of[t] for t in turns if t in type_of}
        assert len(cited) <= 1, cited  # "Yes, go ahead." and "Thanks!" are not types of their own
    for q in analysis["query_types"]:
        assert not any(e.lower().startswith(("yes", "thanks")) for e in q["examples"][:1]), q


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_without_session_metadata_every_trace_is_a_conversation(tmp_path):
    store = TraceStore(tmp_path / "plain.db")
    for i in range(3):
        store.add(f"Where is order {i}?", "It ships tomorrow.", tools=LOOKUP)
    analysis, _ = _analysis(store)
    assert analysis["conversations"]["count"] == 3
    assert analysis["conversations"]["has_session_metadata"] is False
    assert analysis["conversations"]["unit"] == "trace"
    assert "turns" not in analysis["conversations"]
    assert all("session" not in facts for facts in analysis["case_index"].values())
    assert all("conversations" not in f for f in analysis["findings"])
    assert not any(s.level == "session" for s in specs_from_analysis(analysis))


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_dataset_rows_are_whole_conversations(store):
    analysis = store["analysis"]
    client = open_client(store["store"].uri, store["store"].experiment_id)
    cases = select_cases(analysis)
    conversations = [c for c in cases if c.session]
    assert conversations and len({c.session for c in conversations}) == len(conversations)  # one case each
    rows, skipped = build_rows(cases, lambda tid: fetch_row_trace(client, tid), analysis["case_index"])
    dataset = parse_dataset({"rows": rows, "skipped": skipped})
    for session, turns in dataset.sessions.items():
        assert [r.metadata.source_trace for r in turns] == store["sessions"][session]
        assert [r.metadata.turn for r in turns] == [1, 2, 3] and {r.metadata.turns for r in turns} == {3}
        # Each turn's inputs are its trace's own: the conversation so far, as session judges read it.
        assert len(turns[-1].inputs["messages"]) == 5
    failing = {s for s, turns in dataset.sessions.items() if "tool_failures" in turns[0].metadata.findings}
    assert failing == {"conv-0", "conv-1"}
    for turns in dataset.sessions.values():  # the conversation's type on every turn
        assert len({r.metadata.query_type for r in turns}) == 1 and turns[0].metadata.query_type
    # Every case drawn from a conversation is that conversation (error-pattern examples included).
    assert not [
        r
        for r in dataset.rows
        if r.metadata.source_trace in {t for ts in store["sessions"].values() for t in ts} and not r.metadata.session
    ]


def test_dataset_model_loads_todays_files_and_refuses_what_it_cannot_read():
    data = json.loads((SNAPSHOT / "evaluation" / "eval_dataset.json").read_text())
    dataset = parse_dataset(data)  # written before rows had a model (no version key)
    assert isinstance(dataset, EvalDataset) and dataset.rows and dataset.version == DATASET_VERSION
    assert dataset.rows[0].metadata.source_trace and not dataset.sessions
    assert dataset.rows[0].metadata.added_in  # unknown keys are kept
    with pytest.raises(SessionError, match="newer trace2eval"):
        parse_dataset({**data, "version": DATASET_VERSION + 1})
    with pytest.raises(SessionError, match=r"rows/0/inputs"):
        parse_dataset({"rows": [{"inputs": "not an object"}]})


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_session_scorers_run_in_evaluate_on_each_conversation(store):
    """The generated session-level checks, rendered and run by mlflow.genai.evaluate on the turns'
    real traces: one value per conversation, False where a turn's tool failed."""
    import mlflow
    import mlflow.genai

    analysis = store["analysis"]
    specs = specs_from_analysis(analysis)
    session_specs = [s for s in specs if s.level == "session"]
    assert {"tool_failures", "user_frustration", "conversation_completeness"} <= {s.name for s in session_specs}
    code = render_scorers(specs, None)
    namespace: dict = {}
    exec(compile(code, "scorers.py", "exec"), namespace)  # noqa: S102 (the file trace2eval generated)
    scorer = next(s for s in namespace["get_code_scorers"]() if s.name == "tool_failures")
    assert scorer.is_session_level_scorer
    client = open_client(store["store"].uri, store["store"].experiment_id)
    rows = []
    for turns in store["sessions"].values():
        for tid in turns:
            trace = client.get_trace(tid)
            root = next(s for s in trace.data.spans if s.parent_id is None)
            rows.append({"inputs": root.inputs, "outputs": root.outputs, "trace": trace})
    mlflow.set_tracking_uri(store["store"].uri)
    mlflow.set_experiment(experiment_id=store["store"].experiment_id)
    result = mlflow.genai.evaluate(data=rows, scorers=[scorer])
    values = result.result_df["tool_failures/value"].dropna().tolist()
    assert len(values) == 6  # one per conversation, not per turn
    assert sorted(bool(v) for v in values) == [False, False, True, True, True, True]


@pytest.mark.slow  # a real MLflow store with traces (~10 s on a busy machine)
def test_the_spark_engine_digests_carry_the_session_and_group_the_same(store):
    """The Unity Catalog tables carry the session in the trace metadata: a trace rebuilt from its
    span and metadata rows digests with the same session, and the analyzer (which the Spark engine
    feeds the same digests) finds the same conversations."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "spark"))
    from spanrows import record

    from trace2eval.spark.digests import digest_record

    client = open_client(store["store"].uri, store["store"].experiment_id)
    analyzer = Analyzer()
    for digest in store["digests"]:
        row = digest_record(record(client.get_trace(digest["trace_id"])))
        assert row["skipped"] is None
        rebuilt = json.loads(row["digest"])
        assert rebuilt.get("session") == digest.get("session")
        analyzer.add(rebuilt)
    assert analyzer.finish()["conversations"] == store["analysis"]["conversations"]


@pytest.mark.slow  # the whole run, evaluation included, then with judges (~2 min)
def test_a_run_on_per_turn_traces_validates_with_conversations_as_the_unit(store, cli, tmp_path):
    """`trace2eval run` on per-turn traces: the dataset holds whole conversations, scorers.py has
    session-level scorers, and run_eval.py validates them (one value per conversation counts)."""
    code, out, err = cli(
        "run", "-e", store["store"].experiment_id, "--tracking-uri", store["store"].uri, "--out", tmp_path, "--quiet"
    )
    assert code == 0, err[-3000:]
    session = next(d for d in tmp_path.iterdir() if (d / "state" / "validation_results.json").exists())
    validation = json.loads((session / "state" / "validation_results.json").read_text())
    assert validation["validation_status"] == "passed", validation["problems"]
    dataset = parse_dataset(json.loads((session / "evaluation" / "eval_dataset.json").read_text()))
    assert dataset.sessions and all(len(turns) == 3 for turns in dataset.sessions.values())
    scorers = (session / "evaluation" / "scorers.py").read_text()
    assert "def tool_failures(session):" in scorers  # the conversation is the unit: no per-turn copy
    assert "def tool_failures(inputs" not in scorers
    counts = validation["details"]["scorers"]  # one value per conversation, one per turn row
    assert counts["tool_failures"] == {
        **counts["tool_failures"],
        "rows": len(dataset.sessions),
    }
    assert counts["tool_failures"]["values"] == len(dataset.sessions)

    # The monitors: the conversation-level code scorers register too, and each, loaded back in a
    # fresh process, says what the suite says on every conversation of the dataset.
    from trace2eval.sessions import monitor

    synced = monitor.sync(monitor.resolve(session), 1.0)
    assert "tool_failures" in synced.added and not [s for s in synced.skipped if s["name"] == "tool_failures"]
    assert synced.identity["compared"]["tool_failures"] == len(dataset.sessions)
    assert synced.identity["differ"] == {} and synced.identity["problems"] == {}

    # With a judge model, MLflow's conversation judges run once per conversation too (a loopback
    # endpoint speaking the chat-completions protocol answers for the model).
    from judge_server import JudgeServer

    server = JudgeServer()
    server.answers = lambda n: "none" if "frustrat" in json.dumps(server.calls[n]["body"]).lower() else "yes"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "DATABRICKS_", "TRACE2EVAL_"))}
    env.update(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "3" * 32)
    results = tmp_path / "results.json"
    try:
        proc = subprocess.run(
            [sys.executable, "run_eval.py", "--tracking-uri", store["store"].uri, "--experiment-id"]
            + [store["store"].experiment_id, "--judge-model", "databricks:/judge", "--results-json", str(results)],
            cwd=session / "evaluation",
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = json.loads(results.read_text())["scorers"]
    for judge in ("user_frustration", "conversation_completeness", "knowledge_retention"):
        assert counts[judge] == {
            "rows": len(dataset.sessions),
            "values": len(dataset.sessions),
            "errors": 0,
            "first_error": None,
        }, judge
