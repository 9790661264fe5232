"""The regression scorers: a candidate version compared with what production did on the same row.

Each row drawn from a production trace records that behaviour (`metadata.production_baseline`: the
tools it called successfully, its state changes, its writes without a go-ahead); `run_eval.py`
hands it to the scorers as an expectation. They pass on production, fail when a candidate drops a
tool production used or writes without the confirmation production had, and say "n/a" on rows
without a baseline. The end-to-end tests run the generated `run_eval.py --agent` against local
candidate modules (tests/generate/support_candidate.py) on a real sqlite store."""

from __future__ import annotations

import json

import pytest

from trace2eval.traces.checks import NOT_APPLICABLE, baseline_verdict, production_baseline
from trace2eval.traces.features import trace_features


def _features(tools=(), unconfirmed=0, n_spans=5):
    tools = [{"name": n, "ok": ok} for n, ok in tools]
    writes = sum(1 for t in tools if t["name"].startswith("update"))
    return {"n_spans": n_spans, "tools": tools, "n_write_calls": writes, "n_unconfirmed_writes": unconfirmed}


PRODUCTION = _features([("get_order", True), ("search", True), ("update_address", True), ("search", False)])


def _verdict(kind, features, baseline=None):
    return baseline_verdict(kind, features, {}, {"production_baseline": baseline or production_baseline(PRODUCTION)})


def test_the_baseline_holds_what_production_did_successfully():
    assert production_baseline(PRODUCTION) == {
        "tools": ["get_order", "search", "update_address"],
        "writes": ["update_address"],
        "n_write_calls": 1,
        "n_unconfirmed_writes": 0,
    }
    assert production_baseline(_features(n_spans=1)) is None  # a stand-in trace: nothing to record


def test_tools_kept_pass_and_dropped_tools_fail():
    assert _verdict("keeps_production_tools", PRODUCTION)[0] is True
    # A shorter path passes: one lookup fewer, the state change still made.
    assert _verdict("keeps_production_tools", _features([("get_order", True), ("update_address", True)]))[0] is True
    value, why, _ = _verdict("keeps_production_tools", _features())
    assert value is False and "it called no tool" in why
    value, why, _ = _verdict("keeps_production_tools", _features([("get_order", False), ("update_address", False)]))
    assert value is False and "all failed" in why
    value, why, _ = _verdict("keeps_production_tools", _features([("get_order", True), ("search", True)]))
    assert value is False and "update_address did not happen" in why
    base = {"tools": ["a", "b", "c", "d"], "writes": [], "n_write_calls": 0, "n_unconfirmed_writes": 0}
    value, why, _ = _verdict("keeps_production_tools", _features([("a", True)]), base)
    assert value is False and "kept 1 of production's 4 tools" in why


def test_a_write_without_the_go_ahead_production_had_fails():
    assert _verdict("keeps_confirmation", PRODUCTION)[0] is True
    value, why, _ = _verdict("keeps_confirmation", _features([("update_address", True)], unconfirmed=1))
    assert value is False and "production had 0" in why
    # Where production changed nothing (a turn before the go-ahead), an unasked write fails too.
    read_only = {"tools": ["get_order"], "writes": [], "n_write_calls": 0, "n_unconfirmed_writes": 0}
    assert _verdict("keeps_confirmation", _features([("update_address", True)], unconfirmed=1), read_only)[0] is False
    assert _verdict("keeps_confirmation", _features([("get_order", True)]), read_only)[0] is True
    # Production itself wrote without a go-ahead: the candidate may do as much, not more.
    base = {**production_baseline(PRODUCTION), "n_unconfirmed_writes": 1}
    assert _verdict("keeps_confirmation", _features([("update_address", True)], unconfirmed=1), base)[0] is True


def test_rows_without_a_baseline_are_not_applicable_not_passed():
    for kind in ("keeps_production_tools", "keeps_confirmation"):
        value, why, meta = baseline_verdict(kind, PRODUCTION, {}, None)
        assert value == NOT_APPLICABLE and why.startswith("not applicable") and meta == {"not_applicable": True}
        assert _verdict(kind, _features(n_spans=1))[0] == NOT_APPLICABLE  # no spans to compare
    read_only = {"tools": ["get_order"], "writes": [], "n_write_calls": 0, "n_unconfirmed_writes": 0}
    nothing = {**read_only, "tools": []}
    assert _verdict("keeps_production_tools", PRODUCTION, nothing)[0] == NOT_APPLICABLE


def test_dataset_rows_record_the_production_baseline(store):
    from mlflow import MlflowClient

    from trace2eval.generate.dataset import Case, build_rows
    from trace2eval.state.dataset import parse_dataset

    trace_id = store.add(
        "Move order 7 to 5 Main St.",
        "Done.",
        tools=[{"name": "get_order", "args": {"id": 7}}, {"name": "update_address", "args": {"id": 7}, "error": True}],
    )
    client = MlflowClient(store.uri)
    rows, _ = build_rows([Case(trace_id, case_type="sample")], client.get_trace)
    baseline = rows[0]["metadata"]["production_baseline"]
    assert baseline["tools"] == ["get_order"] and baseline["writes"] == []  # the failed write is no baseline
    assert baseline == production_baseline(trace_features(client.get_trace(trace_id), rows[0]["inputs"]))
    # The typed model keeps it, and files written before it existed still load.
    assert parse_dataset({"rows": rows}).rows[0].metadata.production_baseline == baseline
    assert parse_dataset({"rows": [{"inputs": {"q": 1}}]}).rows[0].metadata.production_baseline is None


# -- end to end: the generated run_eval.py against local candidate modules --------------------------


@pytest.fixture(scope="module")
def address_suite(tmp_path_factory):
    """A suite generated offline from 8 two-turn conversations of an agent that asks before it
    changes an address, traced once per turn; its dataset holds every turn (16 rows), each with its
    production baseline."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import SpanType

    import support_candidate
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    folder = tmp_path_factory.mktemp("address-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment("address-prod", artifact_location=str(folder / "artifacts"))
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    ids = []  # (turn 1, turn 2) trace ids of each conversation
    for i in range(8):
        # A chat agent traced once per request: each turn's trace carries the conversation so far.
        first = {"role": "user", "content": f"Please send order {i} to 5 Main St instead."}
        turns = []
        for messages in ([first], None):
            if messages is None:
                reply = {"role": "assistant", "content": turns[0][1]["response"]}
                messages = [first, reply, {"role": "user", "content": "Yes, go ahead."}]
            with mlflow.start_span(name="agent", span_type=SpanType.AGENT) as root:
                root.set_inputs({"messages": messages})
                outputs = support_candidate.asks_first(messages)
                root.set_outputs(outputs)
            turns.append((root.trace_id, outputs))
        ids.append((turns[0][0], turns[1][0]))
    mlflow.flush_trace_async_logging()
    session = runner.create_session(SessionConfig.from_inputs(experiment_id, uri), folder / "sessions")
    assert runner.run_all(session)
    client = MlflowClient(uri)
    rows = []
    for trace_id in [t for pair in ids for t in pair]:
        trace = client.get_trace(trace_id)
        root = next(s for s in trace.data.spans if s.parent_id is None)
        baseline = production_baseline(trace_features(trace, root.inputs, root.outputs))
        rows.append(
            {
                "inputs": root.inputs,
                "outputs": root.outputs,
                "metadata": {"source_trace": trace_id, "production_baseline": baseline},
            }
        )
    assert all(r["metadata"]["production_baseline"]["n_unconfirmed_writes"] == 0 for r in rows)
    dataset = session.evaluation_dir / "eval_dataset.json"
    dataset.write_text(json.dumps({**json.loads(dataset.read_text()), "rows": rows}))
    return {"folder": folder, "session": session, "experiment_id": experiment_id, "ids": ids}


@pytest.fixture
def suite(address_suite, tmp_path):
    from candidate_suite import fresh_copy

    return fresh_copy(address_suite["folder"], address_suite["session"], address_suite["experiment_id"], tmp_path)


def _scorer(results, name):
    return next(s for s in results["candidate"]["scorers"] if s["scorer"] == name)


@pytest.mark.slow
def test_candidates_that_drop_tools_or_skip_the_confirmation_are_caught(suite, address_suite):
    from candidate_suite import CANDIDATE
    from test_candidate import run_eval

    scorers = (suite[0] / "scorers.py").read_text()
    assert "def keeps_production_tools(inputs, outputs, expectations, trace)" in scorers
    assert "def keeps_confirmation(inputs, outputs, expectations, trace)" in scorers

    first_turns, second_turns = {a for a, _ in address_suite["ids"]}, {b for _, b in address_suite["ids"]}
    same = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:asks_first")
    assert same.returncode == 0, same.out[-3000:]
    for name in ("keeps_production_tools", "keeps_confirmation"):
        compared = _scorer(same.results, name)
        assert compared["rows"] == 16 and compared["production"] == 1.0 and compared["regressed"] == 0

    no_tools = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:answers_without_tools")
    assert no_tools.returncode == 1, no_tools.out[-3000:]
    assert "keeps_production_tools" in no_tools.results["regressions"]
    flips = [f for f in no_tools.results["candidate"]["flipped"] if f["scorer"] == "keeps_production_tools"]
    assert {f["source_trace"] for f in flips} == first_turns | second_turns
    assert all(f["direction"] == "regressed" and "it called no tool" in f["rationale"] for f in flips)
    assert all(f["source_trace"] in no_tools.stdout for f in flips[:10])  # named, side by side (10 shown)
    assert "… and 6 more (see --results-json)" in no_tools.stdout

    # It changes the address on the first turn, unasked: that turn fails the confirmation it lost,
    # and the go-ahead turn no longer makes the change production made there.
    skips = run_eval(suite, "--no-judges", "--agent", f"{CANDIDATE}:skips_confirmation")
    assert skips.returncode == 1, skips.out[-3000:]
    assert {"keeps_confirmation", "keeps_production_tools"} <= set(skips.results["regressions"])
    flips = {f["scorer"]: [] for f in skips.results["candidate"]["flipped"]}
    for f in skips.results["candidate"]["flipped"]:
        flips[f["scorer"]].append(f)
    assert {f["source_trace"] for f in flips["keeps_confirmation"]} == first_turns
    assert all("production had 0" in f["rationale"] for f in flips["keeps_confirmation"])
    assert {f["source_trace"] for f in flips["keeps_production_tools"]} == second_turns
    assert all("(update_address)" in f["rationale"] for f in flips["keeps_production_tools"])


@pytest.mark.slow
def test_rows_without_spans_to_compare_are_na_not_passed(suite):
    from test_candidate import run_eval

    # Without the traces (--no-traces) there are no spans to compare: "n/a", a value left out of the mean.
    bare = run_eval(suite, "--no-judges", "--no-gate", "--no-traces")
    assert bare.returncode == 0, bare.out[-3000:]
    assert "keeps_production_tools/mean" not in bare.results["metrics"]
    assert bare.results["scorers"]["keeps_production_tools"]["values"] == 16
