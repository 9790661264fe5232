"""The tools on a real session and a real MLflow store: what they show, what they accept, what
they refuse (and why), and that nothing outside the session's population or any label leaks."""

from __future__ import annotations

import json

import pytest

from trace2eval.llm.tools import ToolContext, toolbox_for
from trace2eval.sessions.files import read_json
from trace2eval.state.versions import SPECS_VERSION


def box(session, task):
    ctx = ToolContext(session, session.config(), task)
    return toolbox_for(task, ctx), ctx


def call(toolbox, tool_name, /, **args):
    result = toolbox.call(tool_name, args)
    try:
        return json.loads(result.content), result
    except ValueError:
        return result.content, result


def test_search_and_read_traces(llm_session):
    session = llm_session()
    toolbox, ctx = box(session, "dataset")
    page, _ = call(toolbox, "search_traces", page_size=3)
    assert len(page["traces"]) == 3 and page["next_page_token"]
    first = page["traces"][0]
    assert {"trace_id", "status", "request", "answer", "tools", "findings"} <= set(first)
    errors, _ = call(toolbox, "search_traces", status="ERROR", page_size=20)
    assert errors["traces"] and all(t["status"] == "ERROR" for t in errors["traces"])
    routed, res = call(toolbox, "search_traces", tool="supply_chain", page_size=20)
    assert not res.is_error, res.content
    assert routed["traces"] and all("supply_chain" in t["tools"] for t in routed["traces"])
    finding = read_json(session.analysis_file)["findings"][0]
    by_finding, _ = call(toolbox, "search_traces", finding=finding["id"], page_size=5)
    assert all(finding["id"] in t["findings"] for t in by_finding["traces"])

    tid = first["trace_id"]
    summary, _ = call(toolbox, "get_trace", trace_id=tid)
    assert summary["trace_id"] == tid and "tool_sequence" in summary
    conversation, _ = call(toolbox, "get_trace", trace_id=tid, detail="conversation")
    assert conversation["conversation"]["turns"]
    spans, _ = call(toolbox, "get_trace", trace_id=tid, detail="spans")
    assert spans["spans"][0]["type"] == "AGENT"
    assert tid in ctx.seen_traces


def test_unknown_tool_and_malformed_input_are_marked_malformed(llm_session):
    toolbox, _ = box(llm_session(), "dataset")
    for name, args in (
        ("run_shell", {"cmd": "id"}),
        ("get_trace", "not an object"),
        ("get_trace", {"id": "x"}),
        ("search_traces", {"page_size": 500}),
    ):
        result = toolbox.call(name, args)
        assert result.is_error and result.malformed, (name, result.content)
    assert "unknown tool 'run_shell'" in toolbox.call("run_shell", {}).content


def test_traces_of_other_experiments_are_not_shown(llm_session, demo_copy):
    import mlflow

    mlflow.set_tracking_uri(demo_copy["uri"])
    other_experiment = mlflow.set_experiment("another-team").experiment_id
    with mlflow.start_span(name="their_agent") as span:
        span.set_inputs({"query": "secret question from another team"})
    other = span.trace_id
    mlflow.set_experiment(experiment_id=demo_copy["experiment_id"])
    assert mlflow.get_trace(other).info.experiment_id == other_experiment
    session = llm_session()
    toolbox, _ = box(session, "dataset")
    result = toolbox.call("get_trace", {"trace_id": other})
    assert result.is_error and "not in experiment" in result.content


def test_labels_and_unlisted_analysis_sections_never_reach_the_model(llm_session, demo_copy):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import AssessmentSource

    session = llm_session()
    client = MlflowClient(demo_copy["uri"])
    mlflow.set_tracking_uri(demo_copy["uri"])
    ids = [t.info.trace_id for t in client.search_traces(locations=[demo_copy["experiment_id"]], max_results=50)]
    for tid in ids:
        client.set_trace_tag(tid, "gt.success", "False")
        mlflow.log_feedback(
            trace_id=tid,
            name="gt_task_success",
            value=False,
            source=AssessmentSource(source_type="CODE", source_id="grader"),
        )
    analysis = read_json(session.analysis_file)
    analysis["meta_evaluation"] = {"label": "gt_task_success", "agreement": "LABEL-MARKER-123"}
    analysis["findings"][0]["label_agreement"] = "LABEL-MARKER-456"
    session.analysis_file.write_text(json.dumps(analysis))

    toolbox, _ = box(session, "scorers")
    shown = []
    for section in ("overview", "findings", "query_types", "tools", "errors"):
        shown.append(toolbox.call("read_analysis", {"section": section}).content)
    for state in ("plan", "agent_profile", "scorers", "dataset", "proposals"):
        shown.append(toolbox.call("read_state", {"name": state}).content)
    shown.append(toolbox.call("search_traces", {"page_size": 20}).content)
    for tid in ids[:5]:
        for detail in ("summary", "conversation", "spans"):
            shown.append(toolbox.call("get_trace", {"trace_id": tid, "detail": detail}).content)
    from trace2eval.llm.prompts import first_message, system_prompt

    shown += [first_message(session, "scorers"), system_prompt("scorers", 10)]
    text = "\n".join(shown)
    for leak in ("gt.success", "gt_task_success", "LABEL-MARKER", "meta_evaluation"):
        assert leak not in text


def test_agent_profile_is_checked_against_the_analysis(llm_session):
    session = llm_session()
    toolbox, ctx = box(session, "initializer")
    clusters = [q["name"] for q in read_json(session.analysis_file)["query_types"]]
    profile = {
        "agent_name": "Sales supervisor",
        "description": "Routes business questions to specialists.",
        "query_types": [{"cluster": "no_such_cluster", "label": "x_type", "description": "?"}],
        "evaluation_dimensions": [
            {"name": "routing", "why": "seen", "scorer_type": "guidelines", "evidence": ["tr-never-shown"]}
        ],
    }
    refused = toolbox.call("submit_agent_profile", profile)
    assert refused.is_error and "no_such_cluster" in refused.content and "never shown" in refused.content
    profile["query_types"] = [{"cluster": clusters[0], "label": "sales_pipeline", "description": "pipeline questions"}]
    profile["evaluation_dimensions"][0].pop("evidence")
    assert not toolbox.call("submit_agent_profile", profile).is_error
    assert ctx.staged.profile["agent_name"] == "Sales supervisor"
    assert ctx.refused[0]["item"] == "agent_profile"


def test_dataset_rows_need_real_shown_traces_and_valid_expectations(llm_session):
    session = llm_session()
    toolbox, ctx = box(session, "dataset")
    page, _ = call(toolbox, "search_traces", page_size=2)
    tid = page["traces"][0]["trace_id"]
    out, result = call(
        toolbox,
        "submit_dataset_rows",
        rows=[
            {"source_trace": tid, "reason": "an edge case", "expectations": {"expected_facts": ["a fact"]}},
            {"source_trace": "tr-0000000000000000000000000000dead", "reason": "made up"},
        ],
    )
    assert [r["accepted"] for r in out["results"]] == [True, False]
    assert "unknown trace id" in out["results"][1]["reasons"][0]
    bad = toolbox.call(
        "submit_dataset_rows",
        {"rows": [{"source_trace": tid, "reason": "x", "expectations": {"expected_answer": "y"}}]},
    )
    assert bad.is_error and bad.malformed and "expected_answer" in bad.content
    assert len(ctx.staged.rows) == 1 and ctx.staged.rows[0]["expectations"] == {"expected_facts": ["a fact"]}


def test_edge_cases_must_look_like_real_inputs(llm_session):
    toolbox, ctx = box(llm_session(), "dataset")
    real_keys = sorted(read_json(ctx.session.dataset_json)["rows"][0]["inputs"])
    out, _ = call(
        toolbox,
        "submit_edge_cases",
        cases=[
            {"inputs": {"prompt": "x"}, "reason": "wrong shape", "expectations": {"guidelines": ["declines"]}},
            {
                "inputs": {k: "What is the weather on Mars?" for k in real_keys},
                "reason": "out of scope",
                "expectations": {"guidelines": ["Declines politely: weather is out of scope."]},
            },
        ],
    )
    assert [r["accepted"] for r in out["results"]] == [False, True]
    assert "the agent's real inputs have" in out["results"][0]["reasons"][0]


def test_judges_are_checked_by_mlflow_and_names_must_not_collide(llm_session):
    session = llm_session()
    toolbox, ctx = box(session, "scorers")
    existing = [s["name"] for s in read_json(session.scorer_specs_file)["scorers"]]
    collide = toolbox.call(
        "submit_guidelines_judge",
        {"name": existing[0], "guidelines": ["Answers the question."], "doc": "a colliding judge"},
    )
    assert collide.is_error and "already exists" in collide.content
    no_vars = toolbox.call(
        "submit_custom_judge",
        {
            "name": "vague_judge",
            "doc": "no template variables here",
            "instructions": "Rate whether the answer is good and helpful overall.",
        },
    )
    assert no_vars.is_error and "must use" in no_vars.content
    expectation_judge = toolbox.call(
        "submit_custom_judge",
        {
            "name": "matches_expectations",
            "doc": "uses expectations",
            "instructions": "Does {{ outputs }} contain the facts in {{ expectations }}? Answer true or false.",
        },
    )
    assert expectation_judge.is_error and "expectations" in expectation_judge.content
    good = toolbox.call(
        "submit_custom_judge",
        {
            "name": "grounded_answer",
            "doc": "answers only from tool results",
            "instructions": "Read {{ trace }}. Answer true if every number in the final answer appears in a tool result.",
        },
    )
    assert not good.is_error
    generic = next(
        s["name"] for s in read_json(session.scorer_specs_file)["scorers"] if s["implementation"] == "guidelines"
    )
    rewrite = toolbox.call(
        "submit_guidelines_judge",
        {
            "name": "routes_to_one_specialist",
            "replaces": generic,
            "guidelines": ["Sales questions go to customer_sales only."],
            "doc": "routing in the agent's own terms",
        },
    )
    assert not rewrite.is_error
    assert ctx.staged.replaces == {"routes_to_one_specialist": generic}
    assert {s.name for s in ctx.staged.specs} == {"grounded_answer", "routes_to_one_specialist"}


# Scorer code a model might send: each reached the operating system through an allow-list review
# before checks became data. Every one must now be refused before anything runs.
ESCAPES = {
    "dunder_by_concatenation": "getattr(getattr((), '__cla' + 'ss__'), '__ba' + 'se__').__subclasses__()",
    "functools_reduce_walk": "__import__('functools').reduce(getattr, ['__cla' + 'ss__', '__mro__'], ())",
    "function_globals": "(lambda: 0).__globals__['__builtins__']",
    "decorator_argument": "@scorer(name=open(MARKER, 'w').write('x') and 'n')",
    "enum_bltns_exec": "import enum; enum.bltns.exec('open(MARKER, \"w\")')",
    "json_codecs_open": "import json; json.codecs.open(MARKER, 'w').write('x')",
    "typing_sys": "import typing; typing.sys.modules['os'].system('touch ' + MARKER)",
    "operator_attrgetter": "import operator; operator.attrgetter('__class__.__base__')(())",
    "string_formatter": "import string; string.Formatter().vformat('{0.__class__}', [()], {})",
    "os_system": "import os; os.system('touch ' + MARKER)",
    "exec_builtin": "exec(\"open(MARKER, 'w')\")",
    "helper_globals": "trace_features.__globals__['os'].system('touch ' + MARKER)",
}


def _payload(kind, marker):
    body = ESCAPES[kind].replace("MARKER", repr(str(marker)))
    return f"@scorer\ndef escape_{kind}(outputs):\n    {body}\n    return True\n"


@pytest.mark.parametrize("kind", sorted(ESCAPES))
def test_scorer_code_from_a_model_is_refused_whatever_it_does(llm_session, tmp_path, kind):
    session = llm_session()
    toolbox, ctx = box(session, "scorers")
    marker = tmp_path / "OWNED"
    code = _payload(kind, marker)
    as_code = toolbox.call("submit_custom_scorer", {"name": f"escape_{kind}", "doc": "x" * 20, "code": code})
    assert as_code.is_error and as_code.malformed and "unknown tool" in as_code.content
    smuggled = toolbox.call(
        "submit_custom_check",
        {
            "name": f"escape_{kind}",
            "doc": "x" * 20,
            "code": code,
            "message": "fails",
            "fail_when": {"feature": "has_answer", "op": "==", "value": False},
        },
    )
    assert smuggled.is_error and smuggled.malformed
    assert ctx.staged.specs == [] and not marker.exists()


def test_custom_checks_are_data_checked_then_tried_on_sample_rows(llm_session, tmp_path):
    session = llm_session()
    toolbox, ctx = box(session, "scorers")
    rule = {
        "any": [
            {"text": "answer", "words_any": ["cannot help", "sorry"]},
            {"tool_calls": {"ok": False}, "op": ">", "value": 1},
        ]
    }
    good, result = call(
        toolbox,
        "submit_custom_check",
        name="answer_declines",
        doc="the agent declines or fails twice",
        fail_when=rule,
        message="the agent declined or two tool calls failed",
    )
    assert not result.is_error, good
    assert good["sample_rows"]["pass"] + good["sample_rows"]["fail"] == 10
    spec = ctx.staged.specs[0]
    assert (spec.implementation, spec.check, spec.params["fail_when"]) == ("rule", "rule", rule)
    assert "Fails when (answer has any of the words" in spec.doc

    for bad in (
        {"feature": "__class__", "op": "==", "value": 1},  # not a feature
        {"text": "answer", "matches": "(a+)+$"},  # no regular expressions
        {"feature": "n_tool_calls", "op": "is", "value": 1},  # not an operator
        {"all": [{"feature": "n_tool_calls", "op": ">", "value": 1}], "any": []},
    ):
        refused = toolbox.call(
            "submit_custom_check", {"name": "bad_rule", "doc": "a bad rule here", "message": "fails", "fail_when": bad}
        )
        assert refused.is_error and refused.malformed, bad
    deep = {"feature": "n_tool_calls", "op": ">", "value": 1}
    for _ in range(5):
        deep = {"not": deep}
    too_deep = toolbox.call(
        "submit_custom_check", {"name": "deep_rule", "doc": "nested too deep", "message": "fails", "fail_when": deep}
    )
    assert too_deep.is_error and "nest at most" in too_deep.content

    check, _ = call(toolbox, "check_scorers")
    assert check["scorers"]["answer_declines"]["scored"] == "10/10"
    assert all(s["problems"] == [] for s in check["scorers"].values())


@pytest.mark.slow
def test_hostile_text_inside_a_check_stays_data(llm_session, tmp_path):
    """Every string of an accepted check (phrases, message, doc) carries an escape payload: the
    rendered scorers.py imports and runs on the sample rows, and nothing is executed."""
    session = llm_session()
    toolbox, ctx = box(session, "scorers")
    marker = tmp_path / "OWNED"
    payloads = [_payload(kind, marker) for kind in sorted(ESCAPES)]
    hostile = '"""\n' + payloads[0] + '\n"""' + "\\"
    _, result = call(
        toolbox,
        "submit_custom_check",
        name="hostile_phrases",
        doc=hostile[:600],
        message=hostile[:200],
        fail_when={
            "any": [
                {"text": "answer", "contains_any": [p[:80] for p in payloads]},
                {"text": "tool_args", "words_any": [hostile[:80]]},
            ]
        },
    )
    assert not result.is_error, result.content
    check, _ = call(toolbox, "check_scorers")
    assert check["crashed"] is None and check["scorers"]["hostile_phrases"]["scored"] == "10/10"
    assert not marker.exists()


@pytest.mark.slow
def test_the_sample_run_stops_a_runaway_scorer_and_bounds_memory(llm_session, tmp_path):
    """The sample run executes trace2eval's rendered file in a child with limits: a scorer edited
    by hand to loop, or to allocate without bound, is stopped and reported, not run to the end."""
    from trace2eval.generate.scorers import render_scorers
    from trace2eval.llm.samplerun import run_samples
    from trace2eval.llm.tools.submit import current_specs, sample_rows

    session = llm_session()
    _, ctx = box(session, "scorers")
    specs, _ = current_specs(ctx)
    code = (
        render_scorers(specs, None)
        .replace(
            "def get_code_scorers():",
            """@scorer
def spinner(outputs):
    while True:
        pass


@scorer
def hog(outputs):
    return len(bytearray(8 * 2**30)) > 0


def get_code_scorers():""",
        )
        .replace("    return [", "    return [spinner, hog, ", 1)
    )
    run = run_samples(code, ["spinner", "hog"], sample_rows(ctx), tmp_path / "scratch", call_timeout_s=1)
    assert run.problems_of("spinner") == ["row 0: did not return within 1 s"]
    assert "MemoryError" in " ".join(run.problems_of("hog"))


def test_a_tool_that_breaks_reports_an_internal_error_and_the_session_goes_on(llm_session):
    session = llm_session()
    # damaged by hand: the file's shape holds, one entry's does not
    session.scorer_specs_file.write_text(json.dumps({"version": SPECS_VERSION, "scorers": [["not", "a", "spec"]]}))
    toolbox, ctx = box(session, "scorers")
    result = toolbox.call("read_state", {"name": "scorers"})
    assert result.is_error and not result.malformed and "internal error in read_state (AttributeError" in result.content
    assert ctx.internal_errors == [
        {"tool": "read_state", "error": "AttributeError: 'list' object has no attribute 'get'"}
    ]
    assert not toolbox.call("read_analysis", {"section": "overview"}).is_error
