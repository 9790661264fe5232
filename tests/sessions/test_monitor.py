"""Production monitors on a real sqlite tracking store: registration, identity, sync semantics, limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mlflow_server

from trace2eval.generate.scorers import ScorerSpec, registerable, render_registerable
from trace2eval.sessions import monitor
from trace2eval.sessions.files import read_json, write_json


@pytest.fixture
def suite(demo_session, demo_store, tmp_path):
    """A copy of the demo session and its store: registering scorers changes the store."""
    db = tmp_path / "mlflow.db"
    shutil.copy(Path(demo_store["folder"]) / "mlflow.db", db)
    folder = tmp_path / "session"
    shutil.copytree(demo_session.dir, folder)
    config = read_json(folder / "state" / "config.json")
    config["tracking_uri"] = f"sqlite:///{db}"
    write_json(folder / "state" / "config.json", config)
    return monitor.resolve(folder)


def _by_name(target):
    return {r.name: r for r in monitor.registered(target)}


def test_registerable_form_is_self_contained():
    specs = [
        ScorerSpec(
            name="tool_failures", implementation="code", check="tool_failures", params={"max": 0}, doc='a """ doc'
        ),
        ScorerSpec(
            name="sorry",
            implementation="rule",
            check="rule",
            params={"fail_when": {"text": "answer", "contains_any": ["sorry"]}, "message": "apologised"},
            doc="d",
        ),
    ]
    code = render_registerable(specs, prefix="trace2eval_")
    namespace: dict = {}
    exec(compile(code, "monitors.py", "exec"), namespace)
    monitors = namespace["get_monitor_scorers"]()
    assert [m.name for m in monitors] == ["trace2eval_tool_failures", "trace2eval_sorry"]
    # The module's globals hold nothing a scorer body could lean on but the decorator itself.
    assert not {k for k in namespace if not k.startswith("__")} - {
        "scorer",
        "tool_failures",
        "sorry",
        "get_monitor_scorers",
        "annotations",
    }
    verdict = monitors[1](inputs={"q": "help"}, outputs="I am sorry, I cannot", trace=None)
    assert verdict.value is False and "apologised" in verdict.rationale
    # Only the check a scorer runs is inlined: another check's function is left out.
    assert "_check_tool_errors" in code.split("def sorry")[0] and "_check_tool_errors" not in code.split("def sorry")[1]
    assert (
        registerable([ScorerSpec(name="x", implementation="code", check="no_such_check", doc="")])[1][0]["name"] == "x"
    )


@pytest.mark.slow
def test_registered_scorers_say_what_the_suite_says(suite):
    """Identity: each registered code scorer, loaded back with get_scorer in a fresh process,
    returns the suite's verdict (value and rationale) on every dataset row."""
    result = monitor.sync(suite, 1.0)
    code = [s.name for s in registerable(monitor.load_suite_specs(suite))[0]]
    assert code and sorted(result.added) == sorted(code)
    rows = len(read_json(suite.evaluation_dir / "eval_dataset.json")["rows"])
    assert result.identity["rows"] == rows > 0
    assert result.identity["rows_with_trace"] == rows
    assert result.identity["compared"] == {name: rows for name in code}
    assert result.identity["differ"] == {} and result.identity["problems"] == {}
    # The open-source store registers code scorers but refuses to start them (gateway judges only).
    assert sorted(n["name"] for n in result.not_started) == sorted(code)
    assert all(monitor.GATEWAY_ONLY == n["reason"] for n in result.not_started)

    # A person edits scorers.py so that one scorer says something else: the check names it.
    edited = read_json(suite.state_dir / "scorer_specs.json")["scorers"]
    first = next(s for s in edited if s["implementation"] == "code")
    with open(suite.evaluation_dir / "scorers.py", "a", encoding="utf-8") as f:
        f.write(
            "\n\n_generated_check = _check\n\n\ndef _check(kind, params, inputs, outputs, trace):\n"
            "    feedback = _generated_check(kind, params, inputs, outputs, trace)\n"
            f"    if kind == {first['check']!r}:\n        feedback.rationale = 'edited'\n    return feedback\n"
        )
    again = monitor.identity(suite, code)
    assert list(again["differ"]) == [first["name"]]
    example = again["differ"][first["name"]][0]
    assert example["suite"][1] == "edited" and example["registered"][1] != "edited" and example["source_trace"]


@pytest.mark.slow
def test_sync_adds_updates_stops_and_leaves_hand_registered_scorers_alone(suite):
    import mlflow
    from mlflow.genai.scorers import Guidelines, ScorerSamplingConfig

    model = mlflow_server.add_gateway_endpoint(suite.tracking_uri)
    mlflow.set_tracking_uri(suite.tracking_uri)
    hand = Guidelines(name="hand_judge", guidelines=["Be polite."], model=model).register(
        experiment_id=suite.experiment_id
    )
    hand.start(experiment_id=suite.experiment_id, sampling_config=ScorerSamplingConfig(sample_rate=0.5))
    hand_before = _by_name(suite)["hand_judge"]

    first = monitor.sync(suite, 0.25, judges=True, judge_model=model, check_identity=False)
    judges = [s.name for s in monitor.load_suite_specs(suite) if not s.is_code]
    assert set(judges) <= set(first.added) and len(judges) >= 3
    now = _by_name(suite)
    assert {now[monitor.PREFIX + j].sample_rate for j in judges} == {0.25}

    second = monitor.sync(suite, 0.25, judges=True, judge_model=model, check_identity=False)
    assert set(judges) <= set(second.unchanged) and not second.added and not second.updated

    # The suite changes: one judge's guidelines are rewritten, another judge is dropped.
    specs_file = suite.state_dir / "scorer_specs.json"
    data = read_json(specs_file)
    guideline = next(s for s in data["scorers"] if s["implementation"] == "guidelines")
    guideline["guidelines"] = ["The answer names the order it is about."]
    dropped = next(s for s in data["scorers"] if s["implementation"] == "builtin_judge")
    data["scorers"].remove(dropped)
    write_json(specs_file, data)
    third = monitor.sync(suite, 0.1, judges=True, judge_model=model, check_identity=False)
    assert third.updated == [guideline["name"]]
    assert third.stopped == [dropped["name"]]
    after = _by_name(suite)
    assert after[monitor.PREFIX + guideline["name"]].version == 2
    assert after[monitor.PREFIX + dropped["name"]].sample_rate == 0
    assert after[monitor.PREFIX + guideline["name"]].sample_rate == 0.1

    stopped = monitor.stop_all(suite)
    assert monitor.PREFIX + guideline["name"] in stopped and "hand_judge" not in stopped
    final = _by_name(suite)
    assert all(not r.running for r in final.values() if r.ours)
    hand_after = final["hand_judge"]
    assert (hand_after.version, hand_after.sample_rate, hand_after.serialized) == (
        hand_before.version,
        0.5,
        hand_before.serialized,
    )


def test_databricks_keeps_twenty_scorers_by_severity_and_precision(tmp_path):
    (tmp_path / "state").mkdir()
    findings = [
        {"id": f"f{i}", "severity": ["low", "high", "medium"][i % 3], "agreement": {"precision": i / 30}}
        for i in range(24)
    ]
    # A guard (no production trace fails it) ranks by its own severity, not as an unknown.
    guards = [{"id": "tool_failures", "severity": "high"}]
    write_json(tmp_path / "state" / "analysis.json", {"findings": findings, "guards": guards})
    target = monitor.Target(tmp_path / "evaluation", tmp_path / "state", "1", "databricks")
    specs = [
        ScorerSpec(name=f"f{i}", implementation="code", check="error_traces", finding=f"f{i}", doc="")
        for i in range(24)
    ]
    specs.append(ScorerSpec(name="tool_failures", implementation="code", check="tool_failures", doc="Guard: ..."))
    specs.append(ScorerSpec(name="g", implementation="guidelines", guidelines=["x"], doc=""))
    specs.append(
        ScorerSpec(
            name="m", implementation="make_judge", instructions="Compare {{ outputs }} with {{ expectations }}", doc=""
        )
    )
    chosen, skipped = monitor.choose(specs, target, judges=True, judge_model="openai:/gpt-4o", hand_registered=2)
    assert len(chosen) == 18
    kept = {s.name for s in chosen}
    high = {f["id"] for f in findings if f["severity"] == "high"}
    assert high | {"tool_failures"} <= kept  # every high-severity scorer runs before any low one
    low_kept = sorted(
        (f["agreement"]["precision"], f["id"]) for f in findings if f["id"] in kept and f["severity"] == "low"
    )
    low_left = [f for f in findings if f["id"] not in kept]
    assert all(f["severity"] == "low" for f in low_left)
    assert min(p for p, _ in low_kept) >= max(f["agreement"]["precision"] for f in low_left)
    reasons = {s["name"]: s["reason"] for s in skipped}
    assert "at most 20 registered scorers" in reasons[low_left[0]["id"]]
    assert "databricks:/" in reasons["g"]
    assert "expectations" in reasons["m"]


def test_monitor_on_a_folder_that_is_no_suite(cli, tmp_path):
    code, _, err = cli("monitor", tmp_path)
    assert code == 1
    assert "is neither a trace2eval session nor a living suite" in err and "Traceback" not in err


def test_sample_rate_out_of_range(suite_like):
    with pytest.raises(Exception, match="not in \\(0, 1\\]"):
        monitor.sync(suite_like, 1.5)


@pytest.fixture
def suite_like(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "evaluation").mkdir()
    write_json(tmp_path / "state" / "scorer_specs.json", {"version": 1, "scorers": []})
    (tmp_path / "evaluation" / "scorers.py").write_text("")
    (tmp_path / "evaluation" / "run_eval.py").write_text(
        'DEFAULT_TRACKING_URI = "sqlite:///x.db"\nDEFAULT_EXPERIMENT_ID = "7"\n'
    )
    target = monitor.resolve(tmp_path)
    assert (target.experiment_id, target.tracking_uri.endswith("x.db")) == ("7", True)
    return target
