"""The runner joins a task's deterministic step and its LLM refinement: the task says whether it
wants one (as data), the LLM layer validates only through the callable the runner hands it."""

from __future__ import annotations

import json

import pytest
from messages_server import ScriptedModel, tool_use

from trace2eval.errors import ValidationFailed
from trace2eval.llm.refine import refine
from trace2eval.sessions import runner
from trace2eval.sessions.files import read_json
from trace2eval.sessions.refinement import REFINE, Refinement
from trace2eval.sessions.tasks import fix
from trace2eval.state.validation import ValidationOutcome

CHECK = {
    "name": "long_tool_chains",
    "doc": "a run that calls tools forever is broken",
    "message": "too many tool calls",
    "fail_when": {"feature": "n_tool_calls", "op": ">", "value": 40},
}


def results(request):
    return request.last_tool_results()[0]["content"]


def test_the_runner_refines_a_task_after_its_deterministic_step(serve, llm_session):
    session = llm_session()
    judges_before = session.plan().task("scorers").summary["judges"]

    def scorers_session(request):
        yield [
            tool_use(
                "submit_guidelines_judge",
                {
                    "name": "cites_figures",
                    "doc": "answers cite figures",
                    "guidelines": ["The answer cites the figures it relies on."],
                },
            )
        ]
        yield [tool_use("finish", {"summary": "one judge"})]

    server = serve(ScriptedModel({"scorers": scorers_session}))
    assert runner.run_task(session, "scorers", force=True) == "completed"
    summary = session.plan().task("scorers").summary
    assert summary["llm"] == "completed"
    assert summary["llm_scorers"] == 1 and summary["judges"] == judges_before + 1  # counted after the LLM step
    assert REFINE not in summary
    assert server.model.started == ["scorers"]


def test_a_refinement_a_task_does_not_want_never_starts(serve, llm_session):
    session = llm_session()
    server = serve(ScriptedModel())
    assert runner._refine(session, "dataset", fix, {"rows": 3, REFINE: Refinement.not_wanted()}) == {"rows": 3}
    assert server.posts == []


def test_a_failed_repair_stands_unless_the_llm_repair_validates(serve, llm_session):
    failure = ValidationFailed("validation still fails after 2 fix attempt(s): crash", "see state/fix_log.json")
    request = {REFINE: Refinement(why="the deterministic repairs could not make validation pass", failure=failure)}

    # No LLM configured: the deterministic failure is the task's result.
    with pytest.raises(ValidationFailed) as raised:
        runner._refine(llm_session(llm="none"), "fix", fix, dict(request))
    assert raised.value is failure

    # An LLM session that changes nothing: the suite still does not validate, so the task still fails.
    session = llm_session()
    server = serve(ScriptedModel())
    with pytest.raises(ValidationFailed) as raised:
        runner._refine(session, "fix", fix, dict(request))
    assert raised.value is failure
    assert server.model.started == ["fix"]
    assert "validation still fails after 2 fix attempt(s)" in json.dumps(server.posts[0].messages[0])  # told why


@pytest.mark.parametrize("verdict", ["passed", "failed"])
def test_the_fix_session_validates_through_the_callable_it_is_handed(serve, llm_session, verdict):
    session = llm_session()
    specs_before = session.scorer_specs_file.read_text()
    calls: list[tuple[str, int]] = []

    def revalidate(by, attempt):
        calls.append((by, attempt))
        status = verdict if by == "llm_fix" else "failed"
        return ValidationOutcome(status, [] if status == "passed" else [{"kind": "crash"}], {"x/mean": 1.0})

    seen = {}

    def fix_session(request):
        yield [tool_use("submit_custom_check", CHECK)]
        seen["validation"] = results((yield [tool_use("run_validation", {})]))
        yield [tool_use("finish", {"summary": "added a check"})]

    serve(ScriptedModel({"fix": fix_session}))
    outcome = refine(session, "fix", failure="crash", revalidate=revalidate)
    assert seen["validation"]["validation_status"] == verdict and seen["validation"]["metrics"] == {"x/mean": 1.0}
    names = [s["name"] for s in read_json(session.scorer_specs_file)["scorers"]]
    if verdict == "passed":  # its own run saw every change: nothing to validate again
        assert calls == [("llm_fix", 1)]
        assert outcome.applied["validation"] == "passed with the LLM's repairs"
        assert "long_tool_chains" in names
    else:  # validated once more at the end, then reverted and the restored files validated
        assert calls == [("llm_fix", 1), ("llm_fix", 2), ("llm_fix_reverted", 1)]
        assert outcome.applied["validation"].startswith("the LLM's repairs failed validation and were reverted")
        assert session.scorer_specs_file.read_text() == specs_before


def test_a_fix_session_without_a_way_to_validate_keeps_nothing(serve, llm_session):
    session = llm_session()
    specs_before = session.scorer_specs_file.read_text()
    seen = {}

    def fix_session(request):
        yield [tool_use("submit_custom_check", CHECK)]
        seen["error"] = (yield [tool_use("run_validation", {})]).last_tool_results()[0]
        yield [tool_use("finish", {"summary": "added a check"})]

    serve(ScriptedModel({"fix": fix_session}))
    outcome = refine(session, "fix", failure="crash")
    assert seen["error"]["is_error"] and "validation cannot run" in seen["error"]["content"]
    assert outcome.applied["validation"] == "the LLM's repairs could not be validated here and were reverted"
    assert session.scorer_specs_file.read_text() == specs_before
