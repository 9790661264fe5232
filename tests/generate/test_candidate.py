"""`run_eval.py --agent TARGET`, run as a user runs it, against a real sqlite store: a local
candidate module, a loopback Databricks serving endpoint reached through mlflow.genai.to_predict_fn,
and a loopback OpenAI chat-completions endpoint. The production answers of the same rows are the
baseline; the exit code says whether the candidate regressed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from agent_server import AgentServer
from judge_server import JudgeServer
from candidate_suite import CANDIDATE, make_suite

pytestmark = pytest.mark.slow

# A person's edit of the generated file: drop the one scorer that reads the answer alone.
TRACE_SCORERS_ONLY = """

_all_code_scorers = get_code_scorers


def get_code_scorers():
    return [s for s in _all_code_scorers() if s.name != "missing_answer"]
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A suite generated offline from 12 order-support traces; its dataset holds every trace (rows
    a user added by hand), and the traces a served agent would return for each order."""
    from tracefactory import TraceStore, add_support_traces

    folder = tmp_path_factory.mktemp("candidate-store")
    served = TraceStore(folder / "endpoint.db", experiment="agent-endpoint")
    served_traces = {}
    for i, trace_id in enumerate(add_support_traces(served, 0, 12)):
        trace = served.trace(trace_id).to_dict()
        trace["info"].pop("trace_location", None)  # recorded by the endpoint elsewhere, not in this experiment
        served_traces[i] = trace
    session, store = make_suite(folder)
    return {"folder": folder, "session": session, "experiment_id": store.experiment_id, "served": served_traces}


@pytest.fixture
def suite(generated, tmp_path):
    from candidate_suite import fresh_copy

    return fresh_copy(generated["folder"], generated["session"], generated["experiment_id"], tmp_path)


def clean_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("MLFLOW_TRACKING", "MLFLOW_EXPERIMENT", "DATABRICKS_", "OPENAI_", "ANTHROPIC_", "TRACE2EVAL_")
        )
    }
    env.update(extra)
    return env


def run_eval(suite, *args, env=None, timeout=300):
    evaluation, uri, experiment_id = suite
    results = evaluation / "results.json"
    results.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "run_eval.py", "--tracking-uri", uri, "--experiment-id", experiment_id]
        + ["--results-json", str(results), *args],
        cwd=evaluation,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
    )
    proc.seconds = time.monotonic() - start
    proc.results = json.loads(results.read_text()) if results.exists() else {}
    proc.out = proc.stdout + proc.stderr
    return proc


def order(request) -> int:
    text = request.get("query") or request["messages"][-1]["content"]
    return int(re.search(r"order (\d+)", text).group(1))


def test_local_candidates_unchanged_regressed_and_failing_on_some_rows(suite):
    from mlflow import MlflowClient

    same = run_eval(suite, "--agent", f"{CANDIDATE}:unchanged")
    assert same.returncode == 0, same.out[-3000:]
    assert "Candidate gate passed" in same.stdout and "Candidate answered 12 of 12 rows" in same.stdout
    compared = {s["scorer"]: s for s in same.results["candidate"]["scorers"]}
    assert compared["tool_failures"]["rows"] == 12 and compared["tool_failures"]["regressed"] == 0
    assert same.results["candidate"]["no_trace_rows"] == 0 and same.results["candidate"]["transport"] == "local"

    # The run names the candidate and the production run it was compared with.
    client = MlflowClient(suite[1])
    run = client.get_run(same.results["run_id"])
    assert run.data.params["agent"] == f"{CANDIDATE}:unchanged"
    baseline = run.data.tags["trace2eval.baseline_run"]
    assert client.get_run(baseline).data.tags["trace2eval.role"] == "baseline"
    # The candidate's traces land in the experiment tagged as such: the next analysis skips them.
    from trace2eval.traces.source import is_evaluation_trace

    tagged = client.search_traces(locations=[suite[2]], filter_string="tags.`trace2eval.candidate` LIKE '%'")
    assert len(tagged) >= 12 and all(is_evaluation_trace(t) for t in tagged)

    worse = run_eval(suite, "--agent", f"{CANDIDATE}:regressed")
    assert worse.returncode == 1, worse.out[-3000:]
    assert "Candidate gate FAILED" in worse.stdout and "tool_failures" in worse.results["regressions"]
    flips = [f for f in worse.results["candidate"]["flipped"] if f["direction"] == "regressed"]
    rows = json.loads((suite[0] / "eval_dataset.json").read_text())["rows"]
    expected = {r["metadata"]["source_trace"] for r in rows if order(r["inputs"]) % 3}
    assert {f["source_trace"] for f in flips if f["scorer"] == "tool_failures"} == expected
    assert all(source in worse.stdout for source in expected)  # the flipped rows are printed
    assert "passed in production, fail with the candidate" in worse.stdout

    flaky = run_eval(suite, "--agent", f"{CANDIDATE}:flaky", "--agent-timeout", "20")
    assert flaky.returncode == 0, flaky.out[-3000:]
    assert flaky.results["candidate"]["errors"] == 2 and "ConnectionError: upstream reset" in flaky.stdout
    assert "Candidate answered 10 of 12 rows" in flaky.stdout and "2 errored row(s) left out" in flaky.stdout


def test_a_candidate_that_hangs_on_a_row_is_timed_out_not_waited_for(suite):
    hung = run_eval(suite, "--agent", f"{CANDIDATE}:hangs", "--agent-timeout", "3", timeout=200)
    assert hung.returncode == 0, hung.out[-3000:]
    [error] = hung.results["candidate"]["errored_rows"]
    assert "no answer within 3 s" in error["error"] and error["source_trace"] in hung.stdout


def test_unreachable_candidate_exits_2_quickly(suite):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = run_eval(suite, "--agent", f"http://127.0.0.1:{port}/v1", "--agent-timeout", "5")
    assert gone.returncode == 2 and gone.seconds < 60
    assert "did not answer" in gone.stderr and gone.results["error"]["kind"] == "candidate_unreachable"
    missing = run_eval(suite, "--agent", "no_such_module_here:answer")
    assert missing.returncode == 2 and "Error:" in missing.stderr and "Traceback" not in missing.stderr


def test_databricks_serving_endpoint_through_to_predict_fn_with_its_trace(suite, generated):
    served = generated["served"]
    server = AgentServer(lambda r: (f"Order {order(r)} ships tomorrow.", served[order(r)]))
    token = "dapi" + "3" * 32
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN=token)
        same = run_eval(suite, "--agent", "endpoints:/support-agent-v2", env=env)
        assert same.returncode == 0, same.out[-3000:]
        invocations = [c for c in server.calls if c["path"] == "/serving-endpoints/support-agent-v2/invocations"]
        assert len(invocations) == 12 and invocations[0]["body"]["databricks_options"] == {"return_trace": True}
        assert "query" in invocations[0]["body"]  # the agent's own request shape
        compared = {s["scorer"]: s for s in same.results["candidate"]["scorers"]}
        assert same.results["candidate"]["no_trace_rows"] == 0 and compared["tool_failures"]["rows"] == 12

        # No trace comes back: the trace-reading scorers say so; the answers are still compared (the
        # suite guards against empty answers, which no production trace gave).
        server.return_trace = False
        blind = run_eval(suite, "--agent", "endpoints:/support-agent-v2", env=env)
        assert blind.returncode == 0, blind.out[-3000:]
        compared = {s["scorer"]: s for s in blind.results["candidate"]["scorers"]}
        assert compared["missing_answer"]["rows"] == 12
        assert {name for name, s in compared.items() if s["rows"]} == {"missing_answer"}
        assert "no trace came back for 12 of 12 answered rows" in blind.stdout

        # With only trace-reading scorers, nothing could be compared: the run says so and exits 2.
        scorers = suite[0] / "scorers.py"
        scorers.write_text(scorers.read_text() + TRACE_SCORERS_ONLY)
        blind = run_eval(suite, "--agent", "endpoints:/support-agent-v2", env=env)
        assert blind.returncode == 2, blind.out[-3000:]
        assert "no trace to check" in blind.stdout and "no trace to check" in blind.stderr
        assert blind.results["error"]["kind"] == "nothing_compared"
    finally:
        server.close()
    for folder in (suite[0], suite[0].parent):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".db":
                assert token not in path.read_text(errors="replace")


def test_openai_chat_endpoint_without_traces(suite):
    answers = {"mode": "same"}

    def answer(request):
        i = order(request)
        return ("" if answers["mode"] == "silent" and i % 3 else f"Order {i} ships tomorrow."), None

    server = AgentServer(answer)
    try:
        same = run_eval(suite, "--agent", f"{server.url}/v1", "--agent-model", "support-v2")
        assert same.returncode == 0, same.out[-3000:]
        assert server.calls[0]["path"] == "/v1/chat/completions" and server.calls[0]["body"]["model"] == "support-v2"
        assert server.calls[0]["body"]["messages"][0]["role"] == "user"
        compared = {s["scorer"]: s for s in same.results["candidate"]["scorers"]}
        assert compared["missing_answer"]["rows"] == 12  # a guard: no production answer was empty
        assert (
            compared["tool_failures"]["verdict"] == "no trace to check" and compared["tool_failures"]["no_trace"] == 12
        )
        assert "12 row(s): no trace to check" in same.stdout

        answers["mode"] = "silent"
        worse = run_eval(suite, "--agent", f"{server.url}/v1")
        assert worse.returncode == 1, worse.out[-3000:]
        assert worse.results["regressions"] == ["missing_answer"]
    finally:
        server.close()


def test_expectation_judges_score_edge_cases_and_rows_with_expectations(suite):
    evaluation = suite[0]
    dataset = evaluation / "eval_dataset.json"
    data = json.loads(dataset.read_text())
    data["rows"][0]["expectations"] = {"expected_facts": ["the order ships tomorrow"]}
    dataset.write_text(json.dumps(data))
    cases = [
        {"inputs": {"query": "Where is order 20?"}, "expectations": {"guidelines": ["Gives a shipping date"]}},
        {"inputs": {"query": "Change the address of order 21"}, "expectations": {"expected_facts": ["ships"]}},
    ]
    (evaluation / "edge_cases.json").write_text(json.dumps({"cases": cases}))

    plain = run_eval(suite, "--agent", f"{CANDIDATE}:unchanged")
    assert plain.returncode == 0, plain.out[-3000:]
    assert plain.stdout.count("Expectation judges not run: 3 row(s)") == 1

    server = JudgeServer(lambda n: "yes")
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "4" * 32)
        judged = run_eval(suite, "--judge-model", "databricks:/judge", "--agent", f"{CANDIDATE}:unchanged", env=env)
        assert judged.returncode == 0, judged.out[-3000:]
        assert judged.results["expectation_judges"] == {"correctness": 2, "expectations_guidelines": 1}
        compared = {s["scorer"]: s for s in judged.results["candidate"]["scorers"]}
        # The dataset row is compared with production; the edge cases are scored on the candidate alone.
        assert compared["correctness"]["rows"] == 1 and compared["correctness"]["candidate_only"] == {
            "rows": 1,
            "passed": 1,
        }
        assert compared["expectations_guidelines"]["candidate_only"] == {"rows": 1, "passed": 1}
        prompts = [json.dumps(c["body"]) for c in server.calls]
        assert any("Gives a shipping date" in p for p in prompts) and any(
            "the order ships tomorrow" in p for p in prompts
        )

        # The normal run (production answers only) gets them too, on the rows that have an answer.
        normal = run_eval(suite, "--judge-model", "databricks:/judge", "--no-gate", env=env)
        assert normal.returncode == 0, normal.out[-3000:]
        assert normal.results["expectation_judges"] == {"correctness": 1}
        assert normal.results["scorers"]["correctness"] == {"rows": 1, "values": 1, "errors": 0, "first_error": None}
    finally:
        server.close()


class SimulatedUserServer:
    """A loopback model endpoint (the chat-completions protocol MLflow's `databricks:/` models speak)
    that plays MLflow's simulated user: it answers the goal-distilling prompt with a goal, the
    goal check with "not yet", and every other prompt with the user's next message."""

    def __init__(self):
        from loopback import NOT_FOUND, JSONHandler, chat_completion, serve

        self.prompts: list[str] = []
        server = self

        class Handler(JSONHandler):
            def do_GET(self):
                self.send_json(404, NOT_FOUND)

            def do_POST(self):
                body = self.read_json()
                if not self.path.endswith("/chat/completions"):
                    return self.send_json(404, NOT_FOUND)
                prompt = "\n".join(str(m.get("content")) for m in body.get("messages", []))
                server.prompts.append(prompt)
                if "Analyze the following conversation" in prompt:
                    content = json.dumps({"goal": "Change the delivery address of order 5", "persona": "A terse buyer"})
                elif "A user has the following goal" in prompt:
                    content = json.dumps({"rationale": "not yet", "result": "no"})
                else:
                    turn = sum("Analyze the following" not in p and "following goal" not in p for p in server.prompts)
                    content = f"Simulated turn {turn}: what about order 5?"
                self.send_json(200, chat_completion(content))

        self.httpd, self.url, _ = serve(Handler)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_simulated_user_plays_the_multi_turn_rows(suite, tmp_path):
    from tracefactory import TraceStore

    evaluation, uri, _ = suite
    recorded = ["Where is order 5?", "Please change the address of order 5", "Is order 5 updated?"]
    messages = []
    for user in recorded:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": "Order 5 ships tomorrow."}]
    messages = messages[:-1]
    tools = [{"name": "get_order", "args": {"id": 5}}, {"name": "update_address", "args": {"id": 5, "fail": False}}]
    trace_id = TraceStore(tmp_path / "mlflow.db").add_turn("conv-5", messages, "Order 5 ships tomorrow.", tools=tools)
    dataset = evaluation / "eval_dataset.json"
    data = json.loads(dataset.read_text())
    data["rows"].append(
        {
            "inputs": {"messages": messages},
            "outputs": {"response": "Order 5 ships tomorrow."},
            "metadata": {"source_trace": trace_id, "session": "conv-5"},
        }
    )
    dataset.write_text(json.dumps(data))
    target = f"{CANDIDATE}:chat_or_query"

    no_model = run_eval(suite, "--agent", target, "--simulate")
    assert no_model.returncode == 2 and "--simulate needs a model" in no_model.stderr

    server = SimulatedUserServer()
    log = tmp_path / "candidate.jsonl"
    try:
        env = clean_env(DATABRICKS_HOST=server.url, DATABRICKS_TOKEN="dapi" + "5" * 32, CANDIDATE_LOG=str(log))
        simulated = run_eval(
            suite, "--agent", target, "--simulate", "--simulator-model", "databricks:/user-sim", "--no-judges", env=env
        )
    finally:
        server.close()
    assert simulated.returncode == 0, simulated.out[-3000:]
    assert "played by a simulated user" in simulated.stdout
    [row] = simulated.results["candidate"]["simulated"]
    assert row["source_trace"] == trace_id and row["user_turns"] == [
        f"Simulated turn {n}: what about order 5?" for n in (1, 2, 3)
    ]
    # The candidate received the simulated user's turns, with its own answers in between.
    conversations = [json.loads(line) for line in log.read_text().splitlines()]
    last = max(conversations, key=len)
    assert [m["content"] for m in last if m["role"] == "user"] == row["user_turns"]
    assert [m["content"] for m in last if m["role"] == "assistant"] == ["Order 5 ships tomorrow."] * 2
    assert not any(m["content"] in recorded for c in conversations for m in c)
    assert any("Please change the address of order 5" in p for p in server.prompts)  # distilled from the real one
    # The comparison still ran over every row, the simulated one included.
    compared = {s["scorer"]: s for s in simulated.results["candidate"]["scorers"]}
    assert compared["tool_failures"]["rows"] == 13 and compared["tool_failures"]["regressed"] == 0
