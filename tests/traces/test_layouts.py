"""The features read right on the traces real frameworks write with MLflow autologging.

Each framework (OpenAI and Anthropic SDK loops, the latter also streamed, LangChain/LangGraph's
agent, invoked and streamed behind a chat endpoint, Databricks' tool-calling ResponsesAgent
template, DSPy ReAct) plays the same scripted support conversation against a loopback model
server into a real sqlite MLflow store; the features of its traces
must say what the script did: which tools ran, which wrote, which failed, how many user turns,
which writes had a go-ahead, the answers, the model calls and the tokens.
"""

from __future__ import annotations

import pytest

from frameworks import agents, truth
from frameworks.servers import ModelServer
from trace2eval.analysis.analyze import Analyzer
from trace2eval.traces.digest import digest_trace

# LangChain's autologging records the graph's thread id as the trace's session (mlflow.trace.session).
SESSIONS = {"langgraph", "langgraph_streamed", "langgraph_astream"}
# Streamed without asking for usage: the model reports no tokens, and the traces carry none.
NO_USAGE = {"responses_agent", "langgraph_streamed"}

# MLflow's Anthropic autolog records a streamed call with the stream's repr as its outputs and no usage.
NOT_IN_TRACES = {"anthropic_streamed": ("answers", "tokens")}

pytestmark = pytest.mark.slow  # 30-50 s for all nine layouts


@pytest.fixture(scope="session")
def layouts(tmp_path_factory):
    """{layout: (digests of its traces in time order, model calls, tokens reported, root outputs)}."""
    import mlflow

    pytest.importorskip("langgraph")
    tmp = tmp_path_factory.mktemp("layouts")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    out = {}
    try:
        with ModelServer() as server:
            for name in agents.LAYOUTS:
                n_requests, n_usage = len(server.requests), len(server.usage)
                exp = agents.run(name, server, tmp / "artifacts")
                traces = mlflow.search_traces(locations=[exp], return_type="list")
                traces.sort(key=lambda t: t.info.request_time)
                tokens = sum(a + b for a, b in server.usage[n_usage:])
                roots = [next(s.outputs for s in t.data.spans if s.parent_id is None) for t in traces]
                out[name] = ([digest_trace(t) for t in traces], len(server.requests) - n_requests, tokens, roots)
    finally:
        mlflow.set_tracking_uri(previous)
    return out


@pytest.mark.parametrize("layout", agents.LAYOUTS)
def test_features_match_the_script(layouts, layout):
    features, n_calls, tokens, _ = layouts[layout]
    verdicts = truth.grade(layout, features, n_calls, tokens)
    if layout == "dspy":  # its traces do not carry the turns that named the order: nothing to ground on
        verdicts.pop("ungrounded_writes")
    for feature in NOT_IN_TRACES.get(layout, ()):  # what the integration did not record: read as absent
        assert verdicts.pop(feature)["got"] in ([], 0), feature
    wrong = {k: (v["got"], v["want"]) for k, v in verdicts.items() if not v["ok"]}
    assert not wrong


def test_dispatcher_tool_spans_are_named_after_the_tool(layouts):
    features, *_ = layouts["responses_agent"]
    names = {t["name"] for f in features for t in f["tools"]}
    assert "execute_tool" not in names and "cancel_order" in names


def test_a_repeated_go_ahead_confirms_each_write(layouts):
    # "Yes please." twice: the refund, after the second one, is confirmed too.
    for layout in ("openai", "anthropic", "langgraph", "langgraph_streamed", "langgraph_astream", "responses_agent"):
        features, *_ = layouts[layout]
        refund = [f for f in features if any(t["name"] == "issue_refund" for t in f["tools"])]
        assert len(refund) == 1 and refund[0]["n_unconfirmed_writes"] == 0, layout
        assert refund[0]["user_turns"].count("Yes please.") == 2, layout


def test_an_unserialized_stream_is_no_answer(layouts):
    *_, roots = layouts["anthropic_streamed"]
    assert all(str(r).startswith("<anthropic.Stream object at 0x") for r in roots)  # what MLflow recorded
    features, *_ = layouts["anthropic_streamed"]
    assert not any(f["has_answer"] or f["answer"] for f in features)


def test_per_call_traces_read_the_turn_not_the_tool_result(layouts):
    for layout in ("openai", "anthropic", "anthropic_streamed"):
        features, *_ = layouts[layout]
        assert all(f["request"] for f in features)
        asking = [f for f in features if not f["has_answer"]]  # calls that asked for a tool
        assert asking and all("tool_use" not in f["answer"] and not f["answer"] for f in asking)


def test_streamed_responses_agent_carries_no_tokens(layouts):
    features, _, tokens, _ = layouts["responses_agent"]
    assert tokens == 0 and all(f["tokens_in"] == f["tokens_out"] == 0 for f in features)
    assert all(f["n_agent_spans"] == 0 for f in features)  # predict -> predict_stream is one agent


@pytest.mark.parametrize("layout", ["langgraph_streamed", "langgraph_astream"])
def test_a_streamed_graph_reads_as_the_invoked_one(layouts, layout):
    # The same agent and conversation, the model streaming in fragments, the graph streamed behind
    # a chat endpoint: turn by turn the same tools, results, requests, answers and model calls as
    # `.invoke()`.
    def turns(name):
        features, *_ = layouts[name]
        return [
            (
                [(t["name"], t["ok"]) for t in f["tools"]],
                f["request"],
                f["answer"],
                f["user_turns"],
                f["llm_calls"],
                f["n_write_calls"],
                f["n_unconfirmed_writes"],
            )
            for f in features
        ]

    assert turns(layout) == turns("langgraph")


def test_a_chat_endpoint_keeps_the_pieces_it_streamed(layouts):
    # What the adapter reads: MLflow keeps a traced generator's yielded pieces as its outputs.
    *_, roots = layouts["langgraph_streamed"]
    assert all(isinstance(r, list) and len(r) > 1 and all(isinstance(p, str) for p in r) for r in roots)
    *_, roots = layouts["langgraph_astream"]
    assert all(isinstance(r, list) and {p["type"] for p in r} == {"AIMessageChunk"} for r in roots)
    assert any(p.get("tool_call_chunks") for r in roots for p in r)  # the tool calls streamed too


def test_streamed_usage_is_read_only_when_the_model_reported_it(layouts):
    # `stream_usage=True`: the usage chunk of every streamed reply is on its span; without it, none.
    features, _, tokens, _ = layouts["langgraph_astream"]
    assert tokens > 0 and all(f["tokens_in"] > 0 and f["tokens_out"] > 0 for f in features)
    features, _, tokens, _ = layouts["langgraph_streamed"]
    assert tokens == 0 and all(f["tokens_in"] == f["tokens_out"] == 0 for f in features)


@pytest.mark.parametrize("layout", agents.LAYOUTS)
def test_findings_match_the_script(layouts, layout):
    digests, *_ = layouts[layout]
    analyzer = Analyzer()
    for d in digests:
        analyzer.add(d)
    analysis = analyzer.finish()
    found = {f["id"]: f["prevalence"]["traces"] for f in analysis["findings"]}
    assert found.get("unconfirmed_writes") == 1  # the address change, and not the repeated "Yes please."
    if layout in SESSIONS:  # the turns are one conversation (the thread id is the session): the unit
        assert analysis["conversations"]["unit"] == "conversation" and analysis["conversations"]["count"] == 1
        assert found.get("tool_failures") == 1  # the conversation with the failing write and tool
    else:
        assert analysis["conversations"]["unit"] == "trace"
        assert found.get("tool_failures") == 2  # the write that returned an error, the tool that raised
    if layout != "dspy":
        assert "ungrounded_writes" not in found
    coverage = analysis["coverage"]
    if layout in NO_USAGE:  # streamed without usage: no token finding can be made
        assert coverage["missing"] == ["tokens"] and "token_outliers" in coverage["findings_not_made"]
        assert "token_outliers" not in found
    elif layout in NOT_IN_TRACES:  # no answers, no usage: said so, and no finding drawn from either
        assert sorted(coverage["missing"]) == ["answers", "tokens"]
        assert "token_outliers" not in found and "missing_answer" not in found
    else:
        assert coverage["missing"] == []
