"""`trace2eval run --llm ...` end to end against loopback Messages servers: an LLM-improved suite
that validates, plain-text answers, hostile output, an endpoint that fails or hangs, and a fix
session that repairs a scorer the deterministic fix had to drop."""

from __future__ import annotations

import json
import time
import pytest
from conftest import TOKEN, session_files_text
from messages_server import Reply, ScriptedModel, error, message, text, tool_use

from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session

pytestmark = pytest.mark.slow

ROUTING_SCORER = '''@scorer
def single_domain_routing(inputs, outputs, trace):
    """A question about one domain should reach only that domain's specialist."""
    specialists = {"customer_sales", "supply_chain"}
    called = sorted({t["name"] for t in trace_features(trace, inputs, outputs)["tools"]} & specialists)
    question = request_text(inputs).lower()
    mentions = [s for s, words in (("customer_sales", ("pipeline", "deal", "sales", "opportunit")),
                                   ("supply_chain", ("inventory", "shipment", "supplier", "stock", "units")))
                if any(w in question for w in words)]
    if len(called) > 1 and len(mentions) < 2:
        return Feedback(value=False, rationale=f"called {called} for a question about {mentions or 'neither domain'}")
    return Feedback(value=True, rationale=f"called {called or 'no specialist'}")
'''


def results(request):
    return request.last_tool_results()[0]["content"]


def initializer(request):
    qtypes = results((yield [tool_use("read_analysis", {"section": "query_types"})]))
    found = results((yield [tool_use("search_traces", {"tool": "supply_chain", "page_size": 3})]))["traces"]
    yield [tool_use("get_trace", {"trace_id": found[0]["trace_id"], "detail": "conversation"})]
    yield [tool_use("submit_agent_profile", {
        "agent_name": "Business questions supervisor",
        "description": "A supervisor that routes sales-pipeline and supply-chain questions to two specialist sub-agents.",
        "domains": ["sales pipeline", "supply chain"],
        "query_types": [{"cluster": q["name"], "label": f"questions_{i}", "description": ", ".join(q["terms"][:3]) or "misc"}
                        for i, q in enumerate(qtypes)],
        "evaluation_dimensions": [
            {"name": "single_domain_routing", "why": "single-domain questions sometimes reach both specialists",
             "scorer_type": "custom_code", "evidence": [found[0]["trace_id"]]}],
        "plan_notes": {"dataset": "add a mixed-domain question with expectations",
                       "scorers": "a routing code scorer and a routing guidelines judge"},
    })]
    yield [tool_use("finish", {"summary": "profile submitted"})]


def dataset(request):
    found = results((yield [tool_use("search_traces", {"tool": "supply_chain", "page_size": 10})]))["traces"]
    shown = results((yield [tool_use("read_state", {"name": "dataset"})]))
    in_dataset = {r["source_trace"] for r in shown["rows"]}
    new = [t["trace_id"] for t in found if t["trace_id"] not in in_dataset][:1] or [found[0]["trace_id"]]
    yield [tool_use("submit_dataset_rows", {"rows": [
        {"source_trace": new[0], "reason": "inventory question: needs the supply-chain specialist only",
         "case_type": "edge_case", "expectations": {"guidelines": ["Answered by the supply_chain specialist alone."]}}]})]
    yield [tool_use("finish", {})]


def scorers(request):
    yield [tool_use("load_skill", {"path": "references/patterns-scorers.md"})]
    yield [tool_use("submit_custom_scorer", {"name": "single_domain_routing", "code": ROUTING_SCORER,
                                             "doc": "Routing: one specialist for a one-domain question."})]
    yield [tool_use("submit_guidelines_judge", {
        "name": "answers_with_figures", "doc": "Business answers carry the figures that were asked for.",
        "guidelines": ["When the user asks for amounts or counts, the response states them as numbers."]})]
    yield [tool_use("check_scorers", {})]
    yield [tool_use("finish", {})]


def run(cli, store, out, *extra):
    start = time.monotonic()
    code, stdout, stderr = cli("run", "-e", store["experiment_id"], "--tracking-uri", store["uri"], "--out", out, *extra)
    session = Session.open(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    return code, stderr, session, time.monotonic() - start


def test_llm_improved_suite_validates(cli, serve, demo_copy, tmp_path):
    server = serve(ScriptedModel({"initializer": initializer, "dataset": dataset, "scorers": scorers}))
    code, err, session, _ = run(cli, demo_copy, tmp_path / "s", "--llm", "databricks", "--llm-model", "my-claude")
    assert code == 0, err[-3000:]
    assert session.validation()["validation_status"] == "passed"

    assert {p.path for p in server.posts} == {"/serving-endpoints/anthropic/v1/messages"}
    assert all(p.headers["authorization"] == f"Bearer {TOKEN}" and p.body["model"] == "my-claude" for p in server.posts)
    assert all("mlflow-evaluation" in p.system_text and "## The rules that matter most" in p.system_text
               for p in server.posts)
    assert server.model.started == ["initializer", "dataset", "scorers"]  # each session started fresh

    profile = read_json(session.state_dir / "agent_profile.json")
    assert profile["agent_name"] == "Business questions supervisor"
    assert "LLM plan: a routing code scorer" in session.plan().task("scorers").description
    rows = read_json(session.dataset_json)["rows"]
    assert any(r["metadata"].get("source") == "llm" and r.get("expectations") for r in rows)
    specs = read_json(session.scorer_specs_file)["scorers"]
    assert {s["name"] for s in specs if s["source"] == "llm"} == {"single_domain_routing", "answers_with_figures"}
    validation = session.validation()
    assert "single_domain_routing/mean" in validation["metrics"]
    assert validation["details"]["scorers"]["single_domain_routing"]["values"] == validation["details"]["rows"]

    sessions = read_json(session.state_dir / "llm_sessions.json")
    assert [(s["task"], s["outcome"]) for s in sessions["sessions"]] == [
        ("initializer", "completed"), ("dataset", "completed"), ("scorers", "completed")]
    assert sessions["totals"]["requests"] == len(server.posts)
    assert sessions["totals"]["input_tokens"] == sum(len(p.raw) // 4 for p in server.posts)
    summary = {t.name: t.summary for t in session.plan().tasks}
    assert summary["scorers"]["llm"] == "completed" and summary["scorers"]["llm_scorers"] == 2
    assert "LLM scorers session completed" in err
    assert TOKEN not in session_files_text(session.dir)

    # The suite runs on its own, as a user would run it.
    import subprocess
    import sys

    again = subprocess.run([sys.executable, "run_eval.py", "--no-gate"], cwd=session.evaluation_dir,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "single_domain_routing" in again.stdout


@pytest.mark.parametrize("provider, path, model", [
    ("databricks", "/serving-endpoints/anthropic/v1/messages", "databricks-claude-opus-4-5"),
    ("anthropic", "/v1/messages", "claude-opus-4-5"),
])
def test_a_model_that_answers_plain_text_only(cli, serve, demo_copy, tmp_path, provider, path, model):
    server = serve(lambda req: message([text("Everything looks fine to me.")], req), provider=provider)
    code, err, session, _ = run(cli, demo_copy, tmp_path / "s", "--llm", provider)
    assert code == 0, err[-3000:]
    assert session.validation()["validation_status"] == "passed"
    assert [p.path for p in server.posts] == [path] * 3
    assert all(p.body["model"] == model and p.body["tools"] for p in server.posts)
    assert all(s["source"] == "deterministic" for s in read_json(session.scorer_specs_file)["scorers"])
    assert not (session.state_dir / "agent_profile.json").exists()


@pytest.fixture
def hostile_model(tmp_path):
    marker = tmp_path / "PWNED"

    def scorers_session(request):
        yield [tool_use("submit_custom_scorer", {
            "name": "sneaky", "doc": "looks harmless",
            "code": f"@scorer\ndef sneaky(outputs):\n    import os\n    os.system('touch {marker}')\n    return True\n"})]
        yield [tool_use("submit_custom_scorer", {
            "name": "sneakier", "doc": "reaches os through the template's import",
            "code": f"@scorer\ndef sneakier(outputs):\n    return os.system('touch {marker}') == 0\n"})]
        yield [tool_use("submit_custom_scorer", {"name": "broken", "doc": "not even JSON", "code": 42})]
        yield [tool_use("submit_custom_judge", "{\"name\": \"x\", \"instructions\": ")]
        yield [tool_use("read_analysis", {"section": "findings"})]
        yield [tool_use("delete_session_folder", {"path": "/"})]
        while True:  # and then it loops
            yield [tool_use("read_state", {"name": "scorers"})]

    return ScriptedModel({"scorers": scorers_session}), marker


def test_hostile_model_output_is_refused_and_the_suite_still_validates(cli, serve, demo_copy, tmp_path, hostile_model):
    model, marker = hostile_model
    serve(model)
    code, err, session, _ = run(cli, demo_copy, tmp_path / "s", "--llm", "databricks")
    assert code == 0, err[-3000:]
    assert session.validation()["validation_status"] == "passed"
    assert not marker.exists()
    record = [s for s in read_json(session.state_dir / "llm_sessions.json")["sessions"] if s["task"] == "scorers"][0]
    assert record["outcome"] == "stopped" and "repeating" in record["reason"]
    assert [r["name"] for r in record["refused"]] == ["sneaky", "sneakier"]
    assert any("import os is not allowed" in r for r in record["refused"][0]["reasons"])
    assert any("os is not allowed" in r for r in record["refused"][1]["reasons"])
    assert record["tool_calls"]["delete_session_folder"] == 1
    scorers_py = (session.evaluation_dir / "scorers.py").read_text()
    assert "sneaky" not in scorers_py and "system(" not in scorers_py


def test_endpoint_down_the_deterministic_suite_stands(cli, serve, demo_copy, tmp_path):
    server = serve(lambda req: error(500, msg=f"internal error; you sent {req.headers.get('authorization')}"))
    code, err, session, seconds = run(cli, demo_copy, tmp_path / "s", "--llm", "databricks")
    assert code == 0, err[-3000:]
    assert session.validation()["validation_status"] == "passed"
    assert seconds < 180
    assert "Warning: LLM unavailable: " in err and "HTTP 500" in err
    records = read_json(session.state_dir / "llm_sessions.json")["sessions"]
    assert [r["outcome"] for r in records] == ["unavailable", "skipped", "skipped"]
    assert records[0]["reason"].startswith("LLM unavailable: ")
    assert session.plan().task("initializer").summary["llm"] == "unavailable"
    assert len(server.posts) == 4  # one session's bounded retries, then the others skip
    assert TOKEN not in session_files_text(session.dir) and TOKEN not in err

    code, err, _, _ = run(cli, demo_copy, tmp_path / "s2", "--llm", "databricks", "--require-llm")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("Error: LLM unavailable: ")
    [failed] = [Session.open(p.parent) for p in (tmp_path / "s2").glob("*/eval_tasks.json")]
    assert failed.plan().task("initializer").status == "failed"
    assert failed.analysis_file.exists()  # the deterministic analysis was written before the LLM step


def test_endpoint_that_hangs(cli, serve, demo_copy, tmp_path):
    serve(lambda req: Reply(delay_s=120, body={}))
    code, err, session, seconds = run(cli, demo_copy, tmp_path / "s", "--llm", "databricks", "--llm-timeout", "2")
    assert code == 0, err[-3000:]
    assert session.validation()["validation_status"] == "passed"
    assert "no response from" in err and seconds < 120


def test_fix_session_repairs_a_scorer_the_deterministic_fix_dropped(cli, serve, demo_copy, tmp_path):
    from trace2eval.cli.options import build_config
    from trace2eval.generate.scorers import ScorerSpec
    from trace2eval.sessions import runner
    from trace2eval.sessions.tasks.scorers import load_specs, save_specs, write_scorers

    config = build_config(demo_copy["experiment_id"], demo_copy["uri"], "databricks", "", None, 0, None, None, None)
    session = runner.create_session(config, tmp_path / "s")
    # Until the fix, the model has nothing to add (plain text) ...
    fixed = ROUTING_SCORER

    def fix_session(request):
        validation = results((yield [tool_use("read_state", {"name": "validation"})]))
        assert validation["fix_log"], validation
        yield [tool_use("submit_custom_scorer", {"name": "single_domain_routing", "replaces": "single_domain_routing",
                                                 "code": fixed, "doc": "routing, repaired: reads tools via trace_features"})]
        outcome = results((yield [tool_use("run_validation", {})]))
        assert outcome["validation_status"] == "passed", outcome
        yield [tool_use("finish", {"summary": "repaired single_domain_routing"})]

    server = serve(ScriptedModel({"fix": fix_session}))
    for name in ("initializer", "dataset", "scorers"):
        runner.run_task(session, name)
    # ... and a scorer an earlier LLM session wrote breaks on real rows (as if it slipped through).
    specs, dropped = load_specs(session)
    broken = ScorerSpec(name="single_domain_routing", kind="custom_code", source="llm", doc="routing",
                        code="@scorer\ndef single_domain_routing(trace):\n    return trace.data.spans[99].name == 'x'\n")
    save_specs(session, specs + [broken], dropped)
    write_scorers(session, specs + [broken], None)
    code, out, err = cli("resume", session.dir)
    assert code == 0, err[-3000:]
    validation = session.validation()
    assert validation["validation_status"] == "passed" and "single_domain_routing/mean" in validation["metrics"]
    fix = session.plan().task("fix")
    assert fix.status == "completed" and fix.summary["llm"] == "completed"
    record = read_json(session.state_dir / "llm_sessions.json")["sessions"][-1]
    assert record["task"] == "fix" and record["applied"]["validation"] == "passed with the LLM's repairs"
    assert "trace.data.spans[99]" not in (session.evaluation_dir / "scorers.py").read_text()
    dropped = read_json(session.scorer_specs_file)["dropped"]
    assert [d.get("repaired_by") for d in dropped if d["name"] == "single_domain_routing"] == ["llm"]
    assert server.model.started[-1] == "fix"
