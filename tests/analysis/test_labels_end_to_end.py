"""--labels: scorers are measured against people's feedback on the traces, and noise is dropped."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_labels_measure_and_prune_scorers(store, tmp_path, cli):
    from mlflow.entities import AssessmentSource

    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")
    for i in range(24):
        loop = i % 4 == 0  # loops: always bad
        tools = [{"name": "lookup", "args": {"q": 1}}] * (3 if loop else 1) + [
            {"name": "lookup", "args": {"q": i + 100}}
        ]
        # One slow trace, and it was fine: latency says nothing about quality here.
        tid = store.add(
            f"question number {i} about my account",
            f"answer {i}.",
            tools=tools,
            duration_ms=90_000 if i == 1 else 1_000 + i,
        )
        good = not loop
        store.mlflow.log_feedback(trace_id=tid, name="thumbs", value="yes" if good else "no", source=human)
    code, out, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path, "--labels", "thumbs"
    )
    assert code == 0, err
    session = out.strip().splitlines()[-1]
    analysis = json.loads(open(f"{session}/state/analysis.json").read())
    meta = analysis["meta_evaluation"]
    assert meta["labelled"] == 24 and meta["bad"] == 6
    by_id = {f["id"]: f for f in analysis["findings"]}
    assert by_id["repeated_calls"]["kept"] is True and by_id["repeated_calls"]["agreement"]["recall"] == 1.0
    # The one slow trace is an outlier the labels call fine: still reported, never a failure.
    slow = by_id["slow_traces"]
    assert slow["kept"] is True and "still reported, not a failure" in slow["kept_reason"]
    assert slow["params"]["report_only"] is True
    scorers = open(f"{session}/evaluation/scorers.py").read()
    assert "def repeated_calls(" in scorers and "'report_only': True" in scorers
    assert "Against labels 'thumbs' (24 labelled traces)" in err
    learned = meta["learned"]
    assert learned["learned"] and "repeated_calls" in learned["chosen"] and "slow_traces" not in learned["chosen"]
    cv = learned["cross_validation"]
    assert (cv["bad"], cv["good"]) == (6, 18) and "Cross-validated on the labelled traces" in err


def test_labels_turn_a_count_into_a_scorer_that_runs_on_new_traces(store, tmp_path, cli):
    """Nothing in the unlabelled suite tells these failures apart, but the labels do: the bad traces end
    with a curt answer. The labels choose `answer_chars <= ...`, and the generated scorers.py fails a
    curt trace it never saw while passing a full one."""
    import importlib.util

    from mlflow.entities import AssessmentSource

    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")

    def add(i: int, curt: bool) -> str:
        answer = "No." if curt else f"Your order {i} ships on Monday and arrives by Thursday, tracking attached."
        tools = [{"name": "lookup_order", "args": {"order": i}, "output": {"order": i, "status": "packed"}}]
        return store.add(f"where is my order {i}?", answer, tools=tools, duration_ms=1_000 + 7 * i)

    for i in range(30):
        curt = i % 5 == 0
        tid = add(i, curt)
        store.mlflow.log_feedback(trace_id=tid, name="thumbs", value=not curt, source=human)
    code, out, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path, "--labels", "thumbs"
    )
    assert code == 0, err
    session = out.strip().splitlines()[-1]
    analysis = json.loads(open(f"{session}/state/analysis.json").read())
    learned = analysis["meta_evaluation"]["learned"]
    assert learned["strategy"] == "signals", learned
    (condition,) = learned["signals"].values()
    assert condition["feature"] == "answer_chars" and condition["op"] == "<="
    signals = next(f for f in analysis["findings"] if f["id"] == "labelled_signals")
    assert signals["check"] == "rule" and signals["prevalence"]["traces"] == 6
    assert "flags 6 of 6 bad and 0 of 24 good labelled traces" in signals["threshold_rationale"]
    assert "thresholds" in err and "answer_chars" in err

    spec = importlib.util.spec_from_file_location("learned_scorers", f"{session}/evaluation/scorers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scorer = next(s for s in module.get_code_scorers() if s.name == "labelled_signals")
    verdict = lambda tid: scorer(inputs=None, outputs=None, trace=store.mlflow.get_trace(tid)).value  # noqa: E731
    assert verdict(add(100, curt=True)) is False and verdict(add(101, curt=False)) is True
