"""A living suite's state as trace2eval 0.1.0 wrote it (tests/data/suite-0.1.0, written by that
version on the demo agent's traces, paths replaced) still loads, renders and runs: users' Volumes
hold such files, and the next night must take them as they are."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from trace2eval.generate.scorers import render_scorers
from trace2eval.sessions.session import Session
from trace2eval.state.specs import load_specs
from trace2eval.traces.checks import run_check
from trace2eval.traces.features import trace_features

SNAPSHOT = Path(__file__).parents[1] / "data" / "suite-0.1.0"


@pytest.fixture
def suite(tmp_path):
    folder = tmp_path / "suite"
    shutil.copytree(SNAPSHOT, folder)
    return Session(folder)


def test_scorer_specs_with_the_old_check_names_render_and_run(suite):
    specs, dropped = load_specs(suite)
    assert {s.check for s in specs if s.implementation == "code"} >= {"tool_failures", "error_traces"}  # upgraded names
    code = render_scorers(specs, None)
    ast.parse(code)
    rows = json.loads((suite.evaluation_dir / "eval_dataset.json").read_text())["rows"]
    for spec in (s for s in specs if s.implementation == "code"):
        for row in rows[:5]:
            passed, why = run_check(spec.check, trace_features(None, row["inputs"], row["outputs"]), spec.params)
            assert isinstance(passed, bool) and why, spec.name


def test_model_written_code_in_old_specs_is_dropped_with_a_reason(suite):
    data = json.loads(suite.scorer_specs_file.read_text())
    data["scorers"].append(
        {
            "name": "llm_refund_check",
            "kind": "custom_code",
            "source": "llm",
            "doc": "refunds",
            "code": "@scorer\ndef llm_refund_check(outputs):\n    return True\n",
        }
    )
    suite.scorer_specs_file.write_text(json.dumps(data))  # what an LLM session of 0.1.0 could leave
    specs, dropped = load_specs(suite)
    assert "llm_refund_check" not in {s.name for s in specs}
    assert dropped[-1]["name"] == "llm_refund_check" and "declarative rule" in dropped[-1]["reason"]
    assert "llm_refund_check" not in render_scorers(specs, None)


def test_the_other_state_files_load(suite):
    analysis = suite.analysis()
    assert analysis.findings and analysis.schema_version >= 1
    validation = suite.validation().model_dump()
    assert validation["validation_status"] == "passed"
    for name in ("watermark.json", "runs.json", "sources.json", "generated_files.json"):
        assert json.loads((suite.state_dir / name).read_text()) is not None


@pytest.mark.slow
def test_the_next_night_runs_on_a_suite_written_by_0_1_0(cli, tmp_path):
    """New traces of the same agent, the 0.1.0 suite: the run validates and publishes; rows whose
    source traces are not in this store are evaluated from their stored inputs and outputs."""
    from trace2eval.demo.seed import seed_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = seed_experiment(uri, n=12)
    suite = tmp_path / "suite"
    shutil.copytree(SNAPSHOT, suite)
    code, out, err = cli(
        "run", "-e", experiment, "--tracking-uri", uri, "--out", tmp_path / "sessions", "--suite", suite
    )
    assert code == 0, err[-3000:]
    history = json.loads((suite / "state" / "runs.json").read_text())
    assert len(history) == 2 and history[-1]["validation_status"] == "passed"
    assert history[-1].get("published") is not False
    specs = json.loads((suite / "state" / "scorer_specs.json").read_text())["scorers"]
    assert {"tool_failures", "error_traces"} <= {s["name"] for s in specs}


def test_old_files_are_upgraded_to_the_current_names(suite):
    from trace2eval.state.versions import ANALYSIS_VERSION

    analysis = suite.analysis()
    assert analysis.schema_version == ANALYSIS_VERSION and "recommended_scorers" not in analysis.model_dump()
    assert {f.check for f in analysis.findings} == {f.id for f in analysis.findings}  # one name end to end
    specs, _ = load_specs(suite)
    assert {s.check for s in specs if s.implementation == "code"} == {
        s.name for s in specs if s.implementation == "code"
    }


def test_specs_written_before_the_implementation_rename_load(suite, tmp_path):
    """scorer_specs.json version 2 (what the version before this one wrote) names a spec's
    implementation `kind`, in the scorers and in the dropped ones: every reader takes it."""
    from trace2eval.report.context import read_specs
    from trace2eval.sessions import monitor
    from trace2eval.state.versions import SPECS_VERSION

    data = json.loads(suite.scorer_specs_file.read_text())
    old = [{**s, "check": s["name"]} if s["kind"] == "code" else s for s in data["scorers"]]
    dropped = [{"name": "gone_judge", "kind": "guidelines", "source": "llm", "reason": "scorer_error: boom"}]
    suite.scorer_specs_file.write_text(json.dumps({"version": 2, "scorers": old, "dropped": dropped}))

    specs, kept_dropped = load_specs(suite)
    assert [s.implementation for s in specs] == [s["kind"] for s in old]
    assert kept_dropped == [
        {"name": "gone_judge", "implementation": "guidelines", "source": "llm", "reason": dropped[0]["reason"]}
    ]
    upgraded = read_specs(suite.scorer_specs_file)
    assert upgraded["version"] == SPECS_VERSION and all("kind" not in s for s in upgraded["scorers"])
    target = monitor.Target(suite.evaluation_dir, suite.state_dir, "1", f"sqlite:///{tmp_path / 'x.db'}")
    assert {s.name for s in monitor.load_suite_specs(target)} == {s["name"] for s in old}
    assert "def tool_failures(" in render_scorers(specs, None)


def test_files_from_a_newer_version_are_refused_clearly(suite):
    from trace2eval.errors import SessionError
    from trace2eval.state.versions import SPECS_VERSION

    data = json.loads(suite.analysis_file.read_text())
    suite.analysis_file.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(SessionError, match="written by a newer trace2eval .schema_version 99; this one reads up to 2"):
        suite.analysis()
    specs = json.loads(suite.scorer_specs_file.read_text())
    suite.scorer_specs_file.write_text(json.dumps({**specs, "version": SPECS_VERSION + 1}))
    with pytest.raises(SessionError, match="scorer_specs.json was written by a newer trace2eval"):
        load_specs(suite)


def test_validation_results_are_typed_and_checked_once_on_load(suite):
    from trace2eval.errors import SessionError

    validation = suite.validation()
    assert validation.passed and validation.version == 1 and isinstance(validation.metrics, dict)
    data = json.loads(suite.validation_file.read_text())
    suite.validation_file.write_text(json.dumps({**data, "problems": [{"kind": "gremlins"}]}))
    with pytest.raises(SessionError, match="is not a valid validation result"):
        suite.validation()
    suite.validation_file.write_text(json.dumps({**data, "validation_status": "maybe"}))
    with pytest.raises(SessionError, match="rerun the validation"):
        suite.validation()


def test_the_analysis_is_read_as_its_typed_model(suite):
    """What the readers use is typed (findings, query types, the case index); the sections only
    displayed pass through unchanged, so a dump gives back the file as it was upgraded."""
    from trace2eval.state.analysis import Analysis, CaseFacts, QueryType
    from trace2eval.state.versions import upgrade_analysis

    analysis = suite.analysis()
    assert isinstance(analysis, Analysis)
    pipeline = analysis.query_type("pipeline_sales")
    assert isinstance(pipeline, QueryType) and pipeline.count == 14 and pipeline.evidence
    assert analysis.query_type("no_such_type") is None
    facts = analysis.case_index["tr-0727e4e3926262717fe8fb9c5c6a3990"]
    assert isinstance(facts, CaseFacts) and facts.query_type == "units_transit" and facts.status == "OK"
    assert analysis.finding("tool_failures").prevalence.traces == 5
    upgraded = upgrade_analysis(json.loads(suite.analysis_file.read_text()))
    dumped = analysis.model_dump()
    assert set(dumped) == set(upgraded)
    assert dumped["agent"] == upgraded["agent"] and dumped["case_index"] == upgraded["case_index"]
    assert [q for q in dumped["query_types"]] == upgraded["query_types"]


def test_an_ill_typed_analysis_is_named_on_load(suite):
    from trace2eval.errors import SessionError

    data = json.loads(suite.analysis_file.read_text())
    data["findings"][0]["prevalence"] = {"traces": "many", "rate": 0.1}
    suite.analysis_file.write_text(json.dumps(data))
    with pytest.raises(SessionError, match=r"not a valid analysis \(findings/0/prevalence/traces"):
        suite.analysis()
    data["findings"][0]["prevalence"] = {"traces": 1, "rate": 0.1}
    data["query_types"][0].pop("name")
    suite.analysis_file.write_text(json.dumps(data))
    with pytest.raises(SessionError, match=r"not a valid analysis \(query_types/0/name"):
        suite.analysis()
