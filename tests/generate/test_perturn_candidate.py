"""`run_eval.py --agent` on conversations traced one trace per user turn (grouped by the
`mlflow.trace.session` metadata): production is scored per conversation by the suite's session-level
scorers, and the candidate's replay of each conversation must be too. Its turn traces form a session
of their own, a session-level scorer is compared conversation against conversation (counted in
conversations, the flipped ones named), and trace-level scorers stay per row."""

from __future__ import annotations

import json

import pytest

from trace2eval.generate import evalscript

PRODUCTION = "asks_first_but_orders_0_and_1"


@pytest.fixture(scope="module")
def per_turn_suite(tmp_path_factory):
    """A suite generated offline from 8 two-turn conversations of an address-change agent, one trace
    per turn, each turn carrying the conversation so far: it asks before it writes, except in
    conversations 0 and 1 (so the analysis finds unconfirmed writes and the suite checks them per
    conversation). Its dataset holds every turn (16 rows) with its session and production baseline."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import SpanType

    import support_candidate
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner
    from trace2eval.traces.checks import production_baseline
    from trace2eval.traces.features import trace_features

    folder = tmp_path_factory.mktemp("per-turn-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment("per-turn-prod", artifact_location=str(folder / "artifacts"))
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    agent = getattr(support_candidate, PRODUCTION)
    ids = {}  # conversation id -> its turns' trace ids
    for i in range(8):
        first = {"role": "user", "content": f"Please send order {i} to 5 Main St instead."}
        messages, turns = [first], []
        for _ in range(2):
            with mlflow.start_span(name="agent", span_type=SpanType.AGENT) as root:
                root.set_inputs({"messages": messages})
                outputs = agent(messages)
                root.set_outputs(outputs)
                mlflow.update_current_trace(metadata={"mlflow.trace.session": f"conv-{i}"})
            turns.append(root.trace_id)
            messages = [*messages, {"role": "assistant", "content": outputs["response"]}]
            messages.append({"role": "user", "content": "Yes, go ahead."})
        ids[f"conv-{i}"] = turns
    mlflow.flush_trace_async_logging()
    session = runner.create_session(SessionConfig.from_inputs(experiment_id, uri), folder / "sessions")
    assert runner.run_all(session)
    client = MlflowClient(uri)
    rows, served = [], {}  # served: what an endpoint serving production returns for (order, turn)
    for conversation, turns in ids.items():
        for n, trace_id in enumerate(turns, 1):
            trace = client.get_trace(trace_id)
            served[int(conversation.split("-")[1]), n] = trace.to_dict()
            served[int(conversation.split("-")[1]), n]["info"].pop("trace_location", None)
            root = next(s for s in trace.data.spans if s.parent_id is None)
            baseline = production_baseline(trace_features(trace, root.inputs, root.outputs))
            metadata = {"source_trace": trace_id, "session": conversation, "production_baseline": baseline}
            rows.append({"inputs": root.inputs, "outputs": root.outputs, "metadata": metadata})
    dataset = session.evaluation_dir / "eval_dataset.json"
    dataset.write_text(json.dumps({**json.loads(dataset.read_text()), "rows": rows}))
    return {"folder": folder, "session": session, "experiment_id": experiment_id, "ids": ids, "served": served}


@pytest.fixture
def suite(per_turn_suite, tmp_path):
    from candidate_suite import fresh_copy

    return fresh_copy(per_turn_suite["folder"], per_turn_suite["session"], per_turn_suite["experiment_id"], tmp_path)


def _scorers(results):
    return {s["scorer"]: s for s in results["candidate"]["scorers"]}


def _turns(*users, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for n, text in enumerate(users):
        messages += [{"role": "user", "content": text}] + (
            [{"role": "assistant", "content": f"r{n}"}] * (n < len(users) - 1)
        )
    return {"inputs": {"messages": messages}, "outputs": {"response": "x"}}


def test_one_replay_per_conversation_when_each_turn_carries_the_conversation_so_far():
    rows = [
        _turns("a", "b", "c"),  # conversation 1, in no particular order
        _turns("a"),
        {"inputs": {"query": "single"}, "outputs": "y"},  # no conversation
        _turns("a", "b"),
        _turns("only the new message"),  # conversation 2: each turn holds only its own message
        _turns("and the next"),
        {"inputs": {"messages": [{"role": "user", "content": "edge"}]}},  # edge case: no production answer
    ]
    sessions = ["c1", "c1", None, "c1", "c2", "c2", "c1"]
    jobs = evalscript.plan_calls(rows, sessions, "t")
    by_first = {j["rows"][0]: j for j in jobs}
    one = by_first[1]
    assert one["rows"] == [1, 3, 0] and one["chain"] and one["session"] == "c1 candidate t"
    two = by_first[4]
    assert two["rows"] == [4, 5] and not two["chain"] and two["session"] == "c2 candidate t"
    assert by_first[2] == by_first[2] | {"rows": [2], "session": None} and by_first[6]["session"] is None
    # A row that is not a prefix of the longest (another system prompt) means one call per row.
    assert not evalscript.plan_calls([_turns("a", system="s"), _turns("a", "b")], ["c", "c"], "t")[0]["chain"]


def test_a_conversation_scorer_is_compared_once_per_conversation():
    # MLflow puts a conversation scorer's value on the conversation's first turn, None on the others.
    conversations = [{"rows": [0, 1]}, {"rows": [2, 3]}, {"rows": [4, 5]}]
    prod = [(True, "ok"), (None, None), (True, "ok"), (None, None), (False, "bad"), (None, None)]
    cand = [(None, None), (False, "lost"), (True, "ok"), (None, None), (True, "ok"), (None, None)]
    c = evalscript.compare_conversations("s", prod, cand, conversations, set(range(6)), None)
    assert (c["unit"], c["rows"], c["turn_rows"]) == ("conversation", 3, 6)
    assert c["regressed"] == [0] and c["fixed"] == [2] and c["p_value"] == 0.75
    # A conversation the candidate did not answer whole is left out.
    partial = evalscript.compare_conversations("s", prod, cand, conversations, {0, 1, 2, 4, 5}, None)
    assert partial["rows"] == 2 and partial["turn_rows"] == 4


def test_a_replays_turns_start_in_successive_milliseconds():
    import time

    starts = []

    def ask(request):
        starts.append(time.time_ns() // 1_000_000)
        return {"response": "ok"}

    evalscript.replay(_turns("a", "b", "c", "d")["inputs"], ask)
    assert len(starts) == 4 and starts == sorted(set(starts))


@pytest.mark.slow
def test_conversation_scorers_compare_conversations_with_the_candidates_replay(suite, per_turn_suite):
    from candidate_suite import CANDIDATE
    from mlflow import MlflowClient
    from test_candidate import run_eval

    assert "def unconfirmed_writes(session)" in (suite[0] / "scorers.py").read_text()  # a conversation scorer
    ids = per_turn_suite["ids"]

    same = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:{PRODUCTION}")
    assert same.returncode == 0, same.out[-3000:]
    scorers = _scorers(same.results)
    conv = scorers["unconfirmed_writes"]
    # Counted in conversations: 8 compared, 2 of which fail in production and with the candidate.
    assert (conv["unit"], conv["rows"], conv["turn_rows"]) == ("conversation", 8, 16)
    assert conv["production"] == conv["candidate"] == 0.75 and conv["regressed"] == conv["fixed"] == 0
    assert scorers["keeps_confirmation"]["unit"] == "row" and scorers["keeps_confirmation"]["rows"] == 16
    assert same.results["candidate"]["flipped"] == [] and same.results["candidate"]["conversations"] == 8

    # The candidate's turns are traced in sessions of their own, one per conversation, two turns
    # each, in turn order; production's sessions keep their own two turns.
    client = MlflowClient(suite[1])
    traces = client.search_traces(locations=[suite[2]], max_results=500)
    by_session = {}
    for t in traces:
        by_session.setdefault(t.info.trace_metadata.get("mlflow.trace.session"), []).append(t)
    candidate_sessions = {s: ts for s, ts in by_session.items() if s and " candidate " in s}
    assert len(candidate_sessions) == 8
    for name, turns in candidate_sessions.items():
        assert name.split(" candidate ")[0] in ids and len(turns) == 2
        turns.sort(key=lambda t: (t.info.request_time, t.info.trace_id))
        assert turns[0].info.request_time < turns[1].info.request_time
        first, second = (next(s for s in t.data.spans if s.parent_id is None).inputs for t in turns)
        assert len(first["messages"]) == 1 and len(second["messages"]) == 3  # replayed in turn order
    assert all(len(by_session[c]) == 2 for c in ids)

    # Asking on no turn: orders 2-7 now write unasked, so 6 conversations regress (not 6 turns, not 12).
    skips = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:skips_confirmation")
    assert skips.returncode == 1, skips.out[-3000:]
    assert "unconfirmed_writes" in skips.results["regressions"]
    conv = _scorers(skips.results)["unconfirmed_writes"]
    assert (conv["unit"], conv["rows"], conv["regressed"], conv["fixed"]) == ("conversation", 8, 6, 0)
    assert conv["p_value"] == pytest.approx(1 / 64)
    flips = [f for f in skips.results["candidate"]["flipped"] if f["scorer"] == "unconfirmed_writes"]
    assert sorted(f["session"] for f in flips) == [f"conv-{i}" for i in range(2, 8)]
    assert all(f["unit"] == "conversation" and f["source_traces"] == ids[f["session"]] for f in flips)
    assert all(f["direction"] == "regressed" for f in flips)
    assert "unconfirmed_writes: 6 conversation(s) passed in production, fail with the candidate" in skips.stdout
    assert all(f"conv-{i} (2)" in skips.stdout for i in range(2, 8))
    # The per-turn regression scorer stays per row: the 6 first turns lost their confirmation.
    rows = _scorers(skips.results)["keeps_confirmation"]
    assert (rows["unit"], rows["rows"], rows["regressed"]) == ("row", 16, 6)

    # Without its tools it writes nothing: every conversation passes, the 2 that failed are fixed,
    # and the tools it dropped are lost per turn.
    no_tools = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:answers_without_tools")
    assert no_tools.returncode == 1, no_tools.out[-3000:]
    conv = _scorers(no_tools.results)["unconfirmed_writes"]
    assert (conv["rows"], conv["regressed"], conv["fixed"], conv["verdict"]) == (8, 0, 2, "improved")
    fixed = [f for f in no_tools.results["candidate"]["flipped"] if f["scorer"] == "unconfirmed_writes"]
    assert sorted(f["session"] for f in fixed) == ["conv-0", "conv-1"]
    assert no_tools.results["regressions"] == ["keeps_production_tools"]


@pytest.mark.slow
def test_a_serving_endpoints_returned_turn_traces_are_compared_per_conversation(suite, per_turn_suite):
    from agent_server import AgentServer
    from test_candidate import clean_env, run_eval

    served = per_turn_suite["served"]

    def answer(request):
        # Production's answer and trace for the turn (its trace carries the endpoint's own session).
        users = [m for m in request["messages"] if m["role"] == "user"]
        i, n = int(users[0]["content"].split("order ")[1].split()[0]), len(users)
        root = next(s for s in served[i, n]["data"]["spans"] if not s.get("parent_span_id"))
        outputs = json.loads(root["attributes"]["mlflow.spanOutputs"])
        return outputs["response"], served[i, n]

    server = AgentServer(answer)
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "4" * 32)
        same = run_eval(suite, "--no-judges", "--agent", "endpoints:/address-agent-v2", env=env)
    finally:
        server.close()
    assert same.returncode == 0, same.out[-3000:]
    # One replay per conversation: its 2 turns, not 1 + 2 for its two rows.
    assert len([c for c in server.calls if c["path"].endswith("/invocations")]) == 16
    conv = _scorers(same.results)["unconfirmed_writes"]
    assert (conv["unit"], conv["rows"], conv["regressed"], conv["fixed"]) == ("conversation", 8, 0, 0)
    assert conv["production"] == conv["candidate"] == 0.75
    assert same.results["candidate"]["no_trace_rows"] == 0 and same.results["candidate"]["flipped"] == []


def test_each_turn_of_a_replay_has_the_time_limit_not_the_whole_conversation():
    import threading
    import time

    progress = threading.Event()

    def conversation(hang_on=None):
        for turn in range(4):
            time.sleep(30 if turn == hang_on else 0.15)
            progress.set()
        return "answered"

    # 4 turns of 0.15 s each take longer than the 0.4 s limit, and none of them does.
    assert evalscript._bounded(conversation, 0.4, "candidate", progress) == "answered"
    start = time.monotonic()
    with pytest.raises(evalscript.CandidateUnreachable, match="no answer within 0.4 s"):
        evalscript._bounded(lambda: conversation(hang_on=2), 0.4, "candidate", progress)
    assert time.monotonic() - start < 2
