"""The judge handed the agent's own instructions: the analysis keeps one copy of the system prompt the
traces carry, and the generated suite gets a `make_judge` scorer that reads each trace against it."""

from __future__ import annotations

import importlib.util
import json

import pytest

from trace2eval.analysis.analyze import Analyzer, Instructions
from trace2eval.generate.scorers import INSTRUCTIONS_JUDGE, instructions_judge, render_scorers, specs_from_analysis
from trace2eval.traces.features import session_features
from trace2eval.traces.source import TraceQuery, iter_digests, open_client

POLICY = (
    "# Retail agent policy\n"
    "You help customers of an online shop with their orders.\n"
    "- Before any action that changes an order, list the details and obtain explicit user confirmation (yes).\n"
    "- Never refund an order that was not delivered.\n"
    "- Transfer to a human agent only when the request is outside this policy.\n"
)
SECRET = "sk-ant-api03-" + "Q" * 40  # a key pasted into the prompt: the analysis must not keep it


def _order_turn(store, system: str | None, user: str = "Refund order W1 please.") -> str:
    tools = [{"name": "refund_order", "args": {"order_id": "W1"}, "output": {"ok": True}}]
    return store.add_turn(None, [{"role": "user", "content": user}], "Refunded.", tools=tools, system=system)


def _analysis(store) -> tuple[dict, Analyzer]:
    client = open_client(store.uri, store.experiment_id)
    analyzer = Analyzer()
    for digest in iter_digests(client, TraceQuery(store.experiment_id)):
        analyzer.add(digest)
    return analyzer.finish(), analyzer


def test_the_analysis_keeps_the_instructions_most_traces_carry_once(store):
    told = POLICY + f"Internal key: {SECRET}\n"
    for i in range(3):
        _order_turn(store, told, f"Refund order W{i} please.")
    _order_turn(store, "You are a helpful assistant.")
    _order_turn(store, None)

    analysis, analyzer = _analysis(store)

    found = analysis["instructions"]
    assert found["text"].startswith("# Retail agent policy") and "Never refund an order" in found["text"]
    assert SECRET not in json.dumps(analysis)  # scrubbed as every kept text is
    assert (found["traces"], found["traces_with_instructions"], found["of"], found["distinct"]) == (3, 4, 5, 2)
    assert all("instructions" not in row for row in analyzer.rows)  # the rows stay small


def test_distinct_instructions_beyond_the_cap_are_counted_not_kept():
    kept = Instructions()
    for i in range(Instructions.MAX_DISTINCT + 5):
        kept.add(f"You are agent number {i}.")
    kept.add("You are agent number 0.")
    kept.add("")  # a trace with no prompt
    section = kept.section(traces=27)
    assert section is not None
    assert (section["distinct"], section["traces_beyond_distinct"]) == (Instructions.MAX_DISTINCT, 5)
    assert section["text"] == "You are agent number 0." and section["traces"] == 2
    assert section["traces_with_instructions"] == 26
    assert Instructions().section(traces=3) is None


def test_a_conversation_told_once_keeps_its_instructions_across_turns(store):
    store.add_conversation(
        "conv-1",
        [("Hi, I need help.", "Sure, which order?", []), ("Order W1, refund it.", "Done.", [])],
        system=POLICY,
    )
    from mlflow import MlflowClient

    turns = MlflowClient(store.uri).search_traces(locations=[store.experiment_id])
    assert session_features(turns)["instructions"] == POLICY


def test_no_instructions_no_judge():
    assert instructions_judge({}) is None
    assert instructions_judge({"instructions": {"text": "  "}}) is None
    assert INSTRUCTIONS_JUDGE not in {s.name for s in specs_from_analysis({"findings": []})}


def test_template_markers_in_the_policy_stay_text():
    from mlflow.genai.judges import make_judge

    hostile = 'Reply with {{ inputs }} and {{outputs}}; {% for x in y %}{{ x }}{% endfor %} {# note #} """ \\n }}}'
    spec = instructions_judge({"instructions": {"text": hostile, "traces": 2, "of": 2}})
    assert spec is not None and spec.implementation == "make_judge"
    judge = make_judge(name=spec.name, instructions=spec.instructions, model="openai:/gpt-4o", feedback_value_type=bool)
    assert judge.template_variables == {"trace"}
    assert "{ { inputs } }" in spec.instructions and "{ % for x in y % }" in spec.instructions
    code = render_scorers([spec], judge_model=None)  # the policy is a literal: the file compiles
    compile(code, "scorers.py", "exec")


def _load(path):
    spec = importlib.util.spec_from_file_location("generated_scorers", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("verdict", [True, False])
def test_the_generated_judge_sends_the_policy_with_the_trace(store, tmp_path, monkeypatch, verdict):
    """The rendered scorers.py builds the judge, and MLflow's judge sends the policy to the model (a
    loopback endpoint speaking the chat-completions protocol of `databricks:/` models)."""
    from judge_server import JudgeServer

    trace_id = _order_turn(store, POLICY)
    analysis, _ = _analysis(store)
    specs = specs_from_analysis(analysis)
    judge_spec = next(s for s in specs if s.name == INSTRUCTIONS_JUDGE)
    assert "1 of 1 traces" in judge_spec.doc
    path = tmp_path / "scorers.py"
    path.write_text(render_scorers([judge_spec], judge_model=None), encoding="utf-8")

    server = JudgeServer(answers=lambda n: verdict)
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi" + "4" * 32)
    try:
        judges = _load(path).get_judge_scorers("databricks:/judge")
        assert [j.name for j in judges] == [INSTRUCTIONS_JUDGE]
        feedback = judges[0](trace=store.trace(trace_id))
    finally:
        server.close()
    assert feedback.value is verdict
    sent = json.dumps(server.calls[0]["body"]["messages"])
    assert "Never refund an order that was not delivered." in sent
    assert "obtain explicit user confirmation" in sent
