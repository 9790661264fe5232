"""The shared describe functions both engines hand their counts to."""

from trace2eval.analysis.sections import AgentCounts, describe_agent


def counts(**kw):
    base = dict(
        n=10,
        tools=[("search", 8), ("book", 2)],
        sub_agents=[],
        nested_calls=0,
        multi_turn=0,
        uses_tools=8,
        retrieval=0,
        roots=[("agent", 10)],
        shapes=[("messages", 10)],
        any_answer=True,
    )
    return AgentCounts(**{**base, **kw})


def test_agent_kind_follows_the_counts():
    assert describe_agent(counts())["type"] == "tool-using agent"
    assert describe_agent(counts(multi_turn=5))["type"] == "tool-using conversational agent (multi-turn)"
    assert describe_agent(counts(sub_agents=["search"], nested_calls=8))["type"].startswith("multi-agent supervisor")
    assert describe_agent(counts(uses_tools=1))["type"] == "LLM application without tools"


def test_io_names_the_inputs_whether_or_not_answers_exist():
    assert describe_agent(counts())["io"] == "inputs messages; outputs carry a final text answer"
    assert describe_agent(counts(any_answer=False))["io"] == "inputs messages; outputs are often empty"
