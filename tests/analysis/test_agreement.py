from trace2eval.analysis.agreement import confusion, meta_evaluate


def test_confusion_and_kappa():
    flagged = [True, True, False, False, True, False, False, False]
    bad = [True, True, True, False, False, False, False, False]
    stats = confusion(flagged, bad)
    assert (stats["flagged_bad"], stats["flagged_good"], stats["missed_bad"], stats["passed_good"]) == (2, 1, 1, 4)
    assert (
        stats["precision"] == round(2 / 3, 3)
        and stats["recall"] == round(2 / 3, 3)
        and stats["false_alarm_rate"] == 0.2
    )
    # observed 6/8; expected (3*3 + 5*5)/64
    assert stats["cohen_kappa"] == round((0.75 - 34 / 64) / (1 - 34 / 64), 3)
    assert confusion([True] * 4, [True] * 4)["cohen_kappa"] == 0.0


def test_meta_evaluation_keeps_signal_and_drops_noise():
    rows = [{"trace_id": f"t{i}", "label": i >= 10} for i in range(20)]  # t0..t9 bad
    findings = [
        {"id": "signal", "scorer": "code", "all_evidence": [f"t{i}" for i in range(6)]},
        {"id": "noise", "scorer": "code", "all_evidence": ["t0", "t10", "t11", "t12", "t13", "t14"]},
        {"id": "monitor", "scorer": "judge", "all_evidence": ["t1"]},
    ]
    meta, records = meta_evaluate(rows, findings, "thumbs")
    assert meta["kept"] == ["signal"] and meta["dropped"] == ["noise"]
    assert records["signal"]["agreement"]["precision"] == 1.0 and records["noise"]["kept"] is False
    assert "monitor" not in records and all("kept" not in f for f in findings)  # the findings are not changed
    assert meta["combined"]["recall"] == 0.6 and meta["combined"]["false_alarm_rate"] == 0.0


def test_no_labels_means_nothing_is_dropped():
    findings = [{"id": "a", "scorer": "code", "all_evidence": ["t1"]}]
    meta, records = meta_evaluate([{"trace_id": "t1", "label": None}], findings, "thumbs")
    assert meta["labelled"] == 0 and "no trace carries" in meta["note"] and records == {}
