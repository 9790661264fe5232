"""Learning from a few labels: the choice is made and cross-validated on the labelled traces only, too
few or one-sided labels fall back to the unlabelled suite, and outliers count as failures only where
the labels say so."""

import pytest

from trace2eval.analysis.agreement import meta_evaluate
from trace2eval.analysis.labels import cross_validate, folds, learn, too_few, wilson


def test_wilson_interval_is_honest_about_small_counts():
    assert wilson(0, 0) is None
    low, high = wilson(3, 4)
    assert 0.25 < low < 0.75 < high <= 1.0  # 3 of 4 says little
    low, high = wilson(300, 400)
    assert high - low < 0.1


@pytest.mark.parametrize(
    "labels, said",
    [
        ({}, "only 0 labelled"),
        ({"t0": False}, "only 1 labelled"),
        ({"t0": False, "t1": True}, "only 2 labelled"),
        ({f"t{i}": True for i in range(20)}, "0 bad and 20 good"),
        ({f"t{i}": i < 2 for i in range(20)}, "18 bad and 2 good"),
    ],
)
def test_too_few_labels_learn_nothing_and_say_why(labels, said):
    result = learn([{"id": "loops", "scorer": "code", "all_evidence": ["t0"]}], labels)
    assert not result["learned"] and said in result["reason"] and "unlabelled suite stands" in result["reason"]
    assert said in too_few(labels)


def findings():
    # 20 labelled traces: t0..t7 bad. `loops` flags 6 bad + 1 good, `noise` flags 2 bad + 6 good, `slow` is
    # an outlier flagging 4 bad + 0 good, `long` an outlier flagging 1 bad + 4 good.
    return [
        {
            "id": "loops",
            "scorer": "code",
            "params": {"max": 1},
            "all_evidence": [f"t{i}" for i in (0, 1, 2, 3, 4, 5, 12)],
        },
        {
            "id": "noise",
            "scorer": "code",
            "params": {},
            "all_evidence": [f"t{i}" for i in (6, 7, 8, 9, 10, 11, 13, 14)],
        },
        {
            "id": "slow",
            "scorer": "code",
            "params": {"max_ms": 9, "report_only": True},
            "threshold_rationale": "slower than 9 ms",
            "all_evidence": ["t0", "t1", "t6", "t7"],
        },
        {
            "id": "long",
            "scorer": "code",
            "params": {"max": 3, "report_only": True},
            "threshold_rationale": "more than 3 turns",
            "all_evidence": ["t2", "t15", "t16", "t17", "t18"],
        },
        {"id": "quiet", "scorer": "code", "params": {"max": 0}, "all_evidence": ["t99"]},  # flags nothing labelled
    ]


LABELS = {f"t{i}": i >= 8 for i in range(20)}


def test_signal_is_kept_noise_dropped_and_outliers_promoted_only_with_evidence():
    result = learn(findings(), LABELS)
    assert result["learned"]
    assert set(result["chosen"]) == {"loops", "slow", "quiet"}
    assert result["evidence"]["loops"] == {"flagged_bad": 6, "bad": 8, "flagged_good": 1, "good": 12}
    meta, records = meta_evaluate([{"trace_id": t, "label": v} for t, v in LABELS.items()], findings(), "thumbs")
    assert meta["dropped"] == ["noise"] and "no signal" in records["noise"]["kept_reason"]
    assert "report_only" not in records["slow"]["params"] and records["slow"]["severity"] == "medium"
    assert "labelled evidence: flags 4 of 8 bad and 0 of 12 good" in records["slow"]["threshold_rationale"]
    assert records["long"]["kept"] and "params" not in records["long"]  # still only reported
    # the combined measure counts failing scorers only: loops + slow (+ quiet, which flags no labelled trace)
    assert meta["combined"]["flagged_bad"] == 8 and meta["combined"]["flagged_good"] == 1


def test_cross_validation_scores_each_fold_on_a_choice_made_without_it():
    cv = cross_validate({f["id"]: set(f["all_evidence"]) for f in findings()}, LABELS, {"loops", "noise", "quiet"})
    assert cv["bad"] == 8 and cv["good"] == 12 and cv["folds"] == 5
    assert 0 < cv["flagged_bad"] <= 8 and cv["flagged_good"] <= 2
    low, high = cv["recall_95"]
    assert low <= cv["recall"] <= high
    every = [t for fold in folds(LABELS) for t in fold]
    assert sorted(every) == sorted(LABELS)  # every labelled trace is held out exactly once


def test_folds_are_stratified():
    for fold in folds(LABELS):
        bad = sum(not LABELS[t] for t in fold)
        assert bad in (1, 2) and len(fold) == 4


def test_the_same_conversations_loaded_again_under_new_trace_ids_learn_the_same():
    """MLflow gives a trace a new id each time it is logged: folds, and so the choice, must follow what
    a trace says, not its id."""
    rows = [{"trace_id": t, "request": f"request {t}", "answer": "done", "label": v} for t, v in LABELS.items()]
    renamed = {t: f"tr-{99 - i:02d}" for i, t in enumerate(LABELS)}  # new ids, sorting the other way round
    again = [{**r, "trace_id": renamed[r["trace_id"]]} for r in rows]
    keys = {r["trace_id"]: r["request"] for r in rows}
    first = folds(LABELS, keys=keys)
    second = folds({renamed[t]: v for t, v in LABELS.items()}, keys={renamed[t]: k for t, k in keys.items()})
    assert [{renamed[t] for t in fold} for fold in first] == second
    moved = [{**f, "all_evidence": [renamed.get(t, f"tr-{t}") for t in f["all_evidence"]]} for f in findings()]
    a = learn(findings(), LABELS, rows=rows)
    b = learn(moved, {renamed[t]: v for t, v in LABELS.items()}, rows=again)
    assert a["chosen"] == b["chosen"] and a["cross_validation"] == b["cross_validation"]
    assert a["cross_validation_other"] == b["cross_validation_other"]


def test_labels_that_cannot_beat_the_unlabelled_suite_leave_it_standing():
    # One failure check that catches every bad trace: label-chosen combinations can only tie with it.
    fs = [{"id": "loops", "scorer": "code", "params": {}, "all_evidence": [f"t{i}" for i in range(8)]}]
    result = learn(fs, LABELS)
    assert not result["learned"] and result["strategy"] == "unlabelled" and result["chosen"] == ["loops"]
    assert "did not beat the unlabelled suite" in result["reason"]
    assert result["cross_validation"]["flagged_bad"] == 8 and result["cross_validation"]["flagged_good"] == 0
    meta, records = meta_evaluate([{"trace_id": t, "label": v} for t, v in LABELS.items()], fs, "thumbs")
    assert records["loops"]["kept"] and not meta["dropped"]


def _units(calls: dict[str, int], noise: dict[str, int]) -> list[dict]:
    return [
        {"trace_id": t, "n_tool_calls": calls.get(t, 3), "tokens_in": noise[t], "label": LABELS.get(t)}
        for t in sorted(noise)
    ]


def test_labels_choose_a_threshold_on_the_agents_own_counts_and_it_reaches_scorers():
    from trace2eval.analysis.agreement import LABELLED_SIGNALS, signals_candidate
    from trace2eval.traces.checks import run_check

    # `loops` catches t0..t3; t4..t7 (bad) and t8 (good) make 12 tool calls, everything else 3. `tokens_in`
    # alternates with no relation to the labels. Two unlabelled traces (u0, u1) are there too.
    fs = [{"id": "loops", "scorer": "code", "params": {}, "all_evidence": ["t0", "t1", "t2", "t3"]}]
    ids = [*LABELS, "u0", "u1"]
    rows = _units({t: 12 for t in ("t4", "t5", "t6", "t7", "t8", "u0")}, {t: 100 * (i % 2) for i, t in enumerate(ids)})
    labels = {t: v for t, v in LABELS.items()}
    result = learn(fs, labels, rows=rows)
    assert result["strategy"] == "signals" and result["chosen"] == ["loops", "signal:n_tool_calls >= 12"]
    assert result["signals"] == {"signal:n_tool_calls >= 12": {"feature": "n_tool_calls", "op": ">=", "value": 12.0}}
    assert result["evidence"]["signal:n_tool_calls >= 12"] == {
        "flagged_bad": 4,
        "bad": 8,
        "flagged_good": 1,
        "good": 12,
    }
    assert not any("tokens_in" in c for c in result["chosen"])  # noise is never chosen
    cv = result["cross_validation"]
    assert cv["flagged_bad"] >= 6 and cv["flagged_good"] <= 2

    meta, records = meta_evaluate([r for r in rows if r["label"] is not None], fs, "thumbs")
    assert meta["combined"]["flagged_bad"] == 8 and meta["combined"]["flagged_good"] == 1
    assert records[LABELLED_SIGNALS]["kept"] and records[LABELLED_SIGNALS]["agreement"]["flagged_bad"] == 4
    finding = signals_candidate(meta)
    assert "n_tool_calls >= 12 (flags 4 of 8 bad and 1 of 12 good labelled traces)" in finding["threshold_rationale"]
    # The finding is a declarative rule: the generated scorer runs the same check on a new trace.
    assert not run_check("rule", {"n_tool_calls": 15, "n_spans": 20}, finding["params"])[0]
    assert run_check("rule", {"n_tool_calls": 4, "n_spans": 20}, finding["params"])[0]


def test_a_threshold_that_catches_a_single_bad_trace_is_not_chosen():
    fs = [{"id": "loops", "scorer": "code", "params": {}, "all_evidence": ["t0", "t1", "t2", "t3", "t4", "t5"]}]
    rows = _units({"t6": 12}, {t: 0 for t in LABELS})  # only one bad trace is left to catch, and a count does
    result = learn(fs, dict(LABELS), rows=rows)
    assert result["strategy"] != "signals" and not result["signals"]
    assert not any(c.startswith("signal:") for c in result["chosen"])


@pytest.mark.parametrize("n", [0, 1, 2, 5, 9])
def test_any_number_of_labels_with_feature_rows_never_crashes(n):
    labels = {f"t{i}": i % 3 == 0 for i in range(n)}
    rows = [
        {"trace_id": t, "n_tool_calls": i, "handoff": i % 2 == 0, "label": v} for i, (t, v) in enumerate(labels.items())
    ]
    meta, records = meta_evaluate(rows, findings(), "thumbs")
    assert meta["labelled"] == n
    assert not (meta.get("learned") or {}).get("signals")


def test_a_reported_scorer_counts_only_where_it_adds_failures_the_others_miss():
    """Precision and kappa alone would promote a reported scorer that only re-flags what a failure check
    already catches, or one that buys two failures with three false alarms: neither improves the suite."""
    from trace2eval.analysis.labels import choose

    labels = {f"t{i}": i >= 8 for i in range(20)}  # t0..t7 bad
    flags = {
        "loops": {"t0", "t1", "t2", "t3", "t4", "t5"},
        "echo": {"t0", "t1", "t6"},  # one bad trace more than `loops`: chance
        "costly": {"t6", "t7", "t8", "t9", "t10"},  # two bad more, for three good
        "useful": {"t6", "t7", "t0"},  # two bad more, for nothing
    }
    assert choose(flags, labels, gating={"loops"}) == ["loops", "useful"]
    assert choose({k: v for k, v in flags.items() if k != "useful"}, labels, gating={"loops"}) == ["loops"]
