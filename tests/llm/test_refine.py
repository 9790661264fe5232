"""LLM sessions end to end inside one task: the loop over the wire, budgets, faults, the ledger,
the generator's own traces, and what gets applied to the session."""

from __future__ import annotations

import json
import time

import pytest
from conftest import TOKEN, session_files_text
from messages_server import Reply, ScriptedModel, error, message, text, tool_use

from trace2eval.errors import LLMUnavailable
from trace2eval.llm import ledger
from trace2eval.llm.refine import refine
from trace2eval.llm.skills import read_skill
from trace2eval.sessions.files import read_json


def results(request):
    return request.last_tool_results()[0]["content"]


def in_dataset(session) -> set[str]:
    """The traces the session's dataset holds (which ones depends on the analysis, not on this test)."""
    return {r["metadata"]["source_trace"] for r in read_json(session.dataset_json)["rows"]}


def dataset_script(taken: set[str]):
    """A dataset session that looks at the newest traces, adds one the dataset lacks (`taken`: what it
    holds) as an edge case and annotates a row."""

    def script(request):
        page = yield [text("Let me look at the traces."), tool_use("search_traces", {"page_size": 20})]
        ids = [t["trace_id"] for t in results(page)["traces"]]
        fresh = [i for i in ids if i not in taken]
        assert fresh, "the 20 newest traces are all dataset rows: nothing left for the model to add"
        new_id = fresh[0]
        existing = yield [tool_use("read_state", {"name": "dataset"})]
        row_id = results(existing)["rows"][0]["source_trace"]
        yield [tool_use("load_skill", {"path": "references/patterns-datasets.md"})]
        yield [
            tool_use(
                "submit_dataset_rows",
                {
                    "rows": [
                        {
                            "source_trace": new_id,
                            "reason": "a request the selection missed",
                            "case_type": "edge_case",
                            "expectations": {"guidelines": ["Answers with figures from the specialist."]},
                        },
                        {
                            "source_trace": row_id,
                            "reason": "annotate",
                            "expectations": {"expected_facts": ["a pipeline figure"]},
                        },
                    ]
                },
            )
        ]
        yield [tool_use("finish", {"summary": "one edge case, one annotation"})]

    return script


def test_a_dataset_session_over_the_wire(serve, llm_session):
    session = llm_session()
    server = serve(ScriptedModel({"dataset": dataset_script(in_dataset(session))}))
    rows_before = read_json(session.dataset_json)["rows"]
    outcome = refine(session, "dataset")
    assert outcome.outcome == "completed"

    posts = server.posts
    assert len(posts) == 5
    for post in posts:
        assert post.path == "/serving-endpoints/anthropic/v1/messages"
        assert post.headers["authorization"] == f"Bearer {TOKEN}"
        assert post.body["model"] == "databricks-claude-opus-4-5"
        names = [t["name"] for t in post.body["tools"]]
        assert names == [
            "search_traces",
            "get_trace",
            "read_analysis",
            "read_state",
            "load_skill",
            "finish",
            "submit_dataset_rows",
            "submit_edge_cases",
        ]
        assert all(t["input_schema"]["type"] == "object" for t in post.body["tools"])
        # The skill is in context: SKILL.md and the gotchas, verbatim.
        assert read_skill("references/GOTCHAS.md").strip()[:400] in post.system_text
        assert "Your task (dataset session)" in post.system_text
    # A fresh conversation from the state files: the first request has exactly one message.
    assert len(posts[0].messages) == 1 and f"Dataset: {len(rows_before)} rows" in json.dumps(posts[0].messages[0])
    # Tool results go back as tool_result blocks tied to the tool_use ids.
    second = posts[1].messages
    assert second[1]["role"] == "assistant" and second[1]["content"][1]["type"] == "tool_use"
    assert second[2]["content"][0]["tool_use_id"] == second[1]["content"][1]["id"]
    # The skill file the model asked for came back in full.
    assert "## Rows as data, with expectations" in posts[3].messages[-1]["content"][0]["content"]

    rows = read_json(session.dataset_json)["rows"]
    assert len(rows) == len(rows_before) + 1
    added = rows[-1]
    assert added["metadata"]["source"] == "llm" and added["metadata"]["case_type"] == "llm_edge_case"
    assert added["expectations"] == {"guidelines": ["Answers with figures from the specialist."]}
    assert rows[0]["expectations"] == {"expected_facts": ["a pipeline figure"]}
    assert "eval_dataset.json" in (session.evaluation_dir / "eval_dataset.py").read_text()

    [record] = ledger.load(session)
    assert record.outcome == "completed" and record.turns == 5 and record.summary == "one edge case, one annotation"
    assert record.usage["input_tokens"] == sum(len(p.raw) // 4 for p in posts)
    assert record.usage["chars_sent"] == sum(len(p.raw.decode()) for p in posts)  # what went over the wire
    assert record.tool_calls == {
        "search_traces": 1,
        "read_state": 1,
        "load_skill": 1,
        "submit_dataset_rows": 1,
        "finish": 1,
    }
    assert record.applied["dataset"] == {"added": 1, "annotated": 1, "skipped": 0}
    assert TOKEN not in session_files_text(session.dir)


def test_plain_text_answers_change_nothing(serve, llm_session):
    session = llm_session()
    server = serve(lambda req: message([text("The suite looks complete; I have nothing to add.")], req))
    before = {p: p.read_bytes() for p in session.evaluation_dir.iterdir()}
    for task in ("initializer", "dataset", "scorers"):
        assert refine(session, task).outcome == "completed"
    assert {p: p.read_bytes() for p in session.evaluation_dir.iterdir()} == before
    assert len(server.posts) == 3
    assert [r.summary for r in ledger.load(session)] == ["The suite looks complete; I have nothing to add."] * 3


def test_unknown_tools_and_broken_inputs_end_the_session(serve, llm_session):
    session = llm_session()
    calls = iter(
        [
            [tool_use("run_shell", {"command": "cat ~/.databrickscfg"})],
            [tool_use("get_trace", "{not json")],
            [tool_use("submit_dataset_rows", {"rows": '[{"source_trace": "x"}]'})],
            [tool_use("never_reached", {})],
        ]
    )
    server = serve(lambda req: message(next(calls), req))
    outcome = refine(session, "dataset")
    assert outcome.outcome == "stopped" and "malformed or unknown tool calls 3 turns in a row" in outcome.reason
    assert len(server.posts) == 3  # the third malformed turn ends the session: nothing more is sent
    replies = [p.messages[-1]["content"][0] for p in server.posts[1:]]
    assert all(r["is_error"] for r in replies)
    assert "unknown tool 'run_shell'" in replies[0]["content"]
    assert "must be a JSON object" in replies[1]["content"]
    assert ledger.load(session)[0].tool_calls == {"run_shell": 1, "get_trace": 1, "submit_dataset_rows": 1}


def test_a_tool_call_loop_is_cut_off(serve, llm_session):
    session = llm_session()
    server = serve(lambda req: message([tool_use("search_traces", {"page_size": 1})], req))
    outcome = refine(session, "dataset")
    assert outcome.outcome == "stopped" and "repeating the same tool calls" in outcome.reason
    assert len(server.posts) == 6  # answered twice, refused four times


def test_turn_budget(serve, llm_session):
    session = llm_session(llm_max_turns=3)
    pages = iter(range(100))
    server = serve(lambda req: message([tool_use("search_traces", {"page_size": 1 + next(pages) % 20})], req))
    outcome = refine(session, "dataset")
    assert outcome.outcome == "stopped" and outcome.reason == "turn budget reached (3 turns)"
    assert len(server.posts) == 3


def test_token_budgets_per_session_and_per_run(serve, llm_session):
    session = llm_session(llm_session_tokens=2_000)
    server = serve(lambda req: message([text("hi")], req))
    outcome = refine(session, "dataset")
    assert outcome.outcome == "stopped" and "session token budget" in outcome.reason and not server.posts

    session = llm_session(llm_run_tokens=30_000)
    session_dir = session.dir
    assert refine(session, "initializer").outcome == "completed"  # ~6k tokens
    ledger_file = session_dir / "state" / "llm_sessions.json"
    data = json.loads(ledger_file.read_text())
    data["sessions"][0]["usage"]["total_tokens"] = 30_000  # as if the first session had used it all
    ledger_file.write_text(json.dumps(data))
    outcome = refine(session, "dataset")
    assert outcome.outcome == "skipped" and "token budget" in outcome.reason


def test_an_outage_is_recorded_once_then_later_sessions_skip(serve, llm_session, capsys):
    session = llm_session()
    server = serve(lambda req: error(500, msg=f"proxy error, headers: {req.headers}"))
    start = time.monotonic()
    first = refine(session, "initializer")
    assert first.outcome == "unavailable" and first.reason.startswith("LLM unavailable: ")
    assert "HTTP 500" in first.reason and time.monotonic() - start < 30
    sent = len(server.posts)
    second = refine(session, "dataset")
    assert second.outcome == "skipped" and "not retried" in second.reason and len(server.posts) == sent
    err = capsys.readouterr().err
    assert "Warning: LLM unavailable: " in err and "the deterministic initializer output stands" in err
    assert TOKEN not in session_files_text(session.dir) and TOKEN not in err


def test_require_llm_turns_an_outage_into_a_failure(serve, llm_session):
    session = llm_session(require_llm=True)
    serve(lambda req: error(503))
    with pytest.raises(LLMUnavailable) as exc:
        refine(session, "initializer")
    assert "LLM unavailable" in exc.value.what and "--require-llm" in exc.value.fix
    assert ledger.load(session)[0].outcome == "unavailable"


def test_an_endpoint_that_hangs(serve, llm_session):
    session = llm_session(llm_timeout_s=1)
    serve(lambda req: Reply(delay_s=60, body={}))
    start = time.monotonic()
    outcome = refine(session, "initializer")
    assert outcome.outcome == "unavailable" and "no response" in outcome.reason
    assert time.monotonic() - start < 15


def test_proposals_accepted_before_an_outage_are_kept(serve, llm_session):
    session = llm_session()
    answers = []

    def model(req):
        if len(answers) == 0:
            answers.append(1)
            return message([tool_use("search_traces", {"page_size": 2})], req)
        if len(answers) == 1:
            answers.append(1)
            tid = req.last_tool_results()[0]["content"]["traces"][0]["trace_id"]
            return message(
                [
                    tool_use(
                        "submit_dataset_rows",
                        {
                            "rows": [
                                {
                                    "source_trace": tid,
                                    "reason": "kept",
                                    "expectations": {"expected_facts": ["kept fact"]},
                                }
                            ]
                        },
                    )
                ],
                req,
            )
        return error(502)

    serve(model)
    outcome = refine(session, "dataset")
    assert (
        outcome.outcome == "unavailable"
        and outcome.applied["dataset"]["added"] + outcome.applied["dataset"]["annotated"] == 1
    )
    assert "kept fact" in session.dataset_json.read_text()


def test_the_generators_own_calls_are_traced(serve, llm_session, demo_copy):
    from mlflow import MlflowClient

    session = llm_session(llm_trace_experiment="trace2eval-llm-sessions")
    serve(ScriptedModel({"dataset": dataset_script(in_dataset(session))}))
    refine(session, "dataset")
    [record] = ledger.load(session)
    client = MlflowClient(demo_copy["uri"])
    experiment = client.get_experiment_by_name("trace2eval-llm-sessions")
    trace = client.get_trace(record.trace_id)
    assert trace.info.experiment_id == experiment.experiment_id != demo_copy["experiment_id"]
    kinds = [(s.name, str(s.span_type)) for s in trace.data.spans]
    assert kinds[0] == ("trace2eval.dataset", "AGENT")
    assert kinds.count(("Messages.create", "CHAT_MODEL")) == 5
    assert ("tool:submit_dataset_rows", "TOOL") in kinds
    assert trace.info.token_usage["input_tokens"] == record.usage["input_tokens"]
    # The production experiment is untouched; the token is nowhere in the store.
    assert len(client.search_traces(locations=[demo_copy["experiment_id"]], max_results=100)) == 40
    assert TOKEN.encode() not in (demo_copy["folder"] / "mlflow.db").read_bytes()


def test_no_llm_means_no_session(llm_session):
    session = llm_session(llm="none")
    assert refine(session, "dataset") is None and ledger.load(session) == []


def test_prompt_cache_markers_are_dropped_for_an_endpoint_that_rejects_them(serve, llm_session):
    session = llm_session()

    def model(req):
        if "cache_control" in req.raw.decode():
            return error(400, "invalid_request_error", "Extra inputs are not permitted: cache_control")
        return message([text("nothing to add")], req)

    server = serve(model)
    assert refine(session, "dataset").outcome == "completed"
    assert ["cache_control" in p.raw.decode() for p in server.posts] == [True, False]
    first = server.posts[0].body
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
