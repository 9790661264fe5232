"""--labels with any number of labels: 0, 1, a handful, all of one class. Each run finishes and says
what the labels could not measure, instead of formatting a measure that does not exist."""

import json

import pytest

from trace2eval.analysis.agreement import fmt_rate, meta_evaluate

FINDINGS = [
    {"id": "loops", "scorer": "code", "all_evidence": ["t0", "t4"]},
    {"id": "slow", "scorer": "code", "all_evidence": ["t1"]},
]


def findings():
    return [dict(f) for f in FINDINGS]


@pytest.mark.parametrize(
    "labels, unmeasured",
    [
        ({"t0": False}, ["keep/drop decisions", "false-alarm rate"]),  # one label, bad
        ({"t0": True}, ["keep/drop decisions", "recall and precision"]),  # one label, good
        ({"t0": False, "t1": True}, ["keep/drop decisions"]),  # a handful, both classes
        ({f"t{i}": True for i in range(12)}, ["recall and precision"]),  # all good, enough of them
        ({f"t{i}": False for i in range(12)}, ["false-alarm rate"]),  # all bad, enough of them
    ],
)
def test_what_cannot_be_measured_is_said(labels, unmeasured):
    rows = [{"trace_id": f"t{i}", "label": labels.get(f"t{i}")} for i in range(12)]
    fs = findings()
    meta, _ = meta_evaluate(rows, fs, "thumbs")
    assert [m.split(":")[0] for m in meta["unmeasured"]] == unmeasured
    assert "not measured: " in meta["note"]
    assert meta["kept"] == ["loops", "slow"] and not meta["dropped"]  # one class or few labels: no evidence to drop
    combined = meta["combined"]
    if all(labels.values()):
        assert combined["recall"] is None and fmt_rate(combined["recall"]) == "n/a"
    if not any(labels.values()):
        assert combined["false_alarm_rate"] is None


def test_enough_labels_of_both_classes_measure_everything():
    rows = [{"trace_id": f"t{i}", "label": i % 2 == 1} for i in range(12)]
    meta, _ = meta_evaluate(rows, findings(), "thumbs")
    assert meta["unmeasured"] == [] and "not measured" not in meta["note"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "labels, said",
    [
        ({}, "no trace carries a yes/no feedback named 'thumbs'"),
        ({0: "no"}, "cannot measure keep/drop decisions: only 1 labelled trace(s)"),
        ({0: "no", 3: "yes"}, "cannot measure keep/drop decisions: only 2 labelled trace(s)"),
        ({1: "yes", 2: "yes"}, "cannot measure recall and precision: no labelled trace is bad"),
        ({i: "yes" for i in range(8)}, "cannot measure recall and precision: no labelled trace is bad"),
        ({i: "no" for i in range(8)}, "cannot measure false-alarm rate: no labelled trace is good"),
    ],
    ids=["none", "one", "two", "two-good", "all-positive", "all-negative"],
)
def test_labels_runs_finish_with_few_labels(store, tmp_path, cli, labels, said):
    from mlflow.entities import AssessmentSource

    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")
    for i in range(8):
        tools = [{"name": "lookup", "args": {"q": 1}}] * (3 if i % 4 == 0 else 1)
        tid = store.add(f"question number {i} about my account", f"answer {i}.", tools=tools, duration_ms=1_000 + i)
        if i in labels:
            store.mlflow.log_feedback(trace_id=tid, name="thumbs", value=labels[i], source=human)
    code, out, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path, "--labels", "thumbs"
    )
    assert code == 0, err[-3000:]
    assert "Traceback" not in err and said in err
    session = out.strip().splitlines()[-1]
    meta = json.loads(open(f"{session}/state/analysis.json").read())["meta_evaluation"]
    assert meta["labelled"] == len(labels) and meta["unmeasured"]
    assert not meta["dropped"]
    report = open(f"{session}/report.html").read()
    assert "Scorers against the labels" in report
    assert meta["note"].split(";")[-1].strip()[:40] in report.replace("&#39;", "'").replace("&amp;", "&")
