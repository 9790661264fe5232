"""Meta-evaluation: how well each code scorer agrees with labels people already gave.

Labels (user thumbs, reviewer verdicts: any yes/no feedback named with `--labels`) never shape a
finding's threshold; they measure the finished scorers and, when there are enough of them
(`analysis/labels.py`), decide which scorers a trace fails on: scorers without signal are dropped,
outliers with signal count as failures, and the combination's cross-validated recall and false-alarm
rate on the labelled traces are reported with their 95% intervals.
"""

from __future__ import annotations

from typing import Any

from trace2eval.analysis.labels import FALSE_ALARM_COST, MIN_LABELLED, learn, signal_text
from trace2eval.traces.checks import rule_holds

LABELLED_SIGNALS = "labelled_signals"  # the finding the labels' thresholds become


def confusion(flagged: list[bool], bad: list[bool]) -> dict[str, Any]:
    """Agreement of 'the scorer fails the trace' with 'people said the trace was bad'."""
    tp = sum(f and b for f, b in zip(flagged, bad))
    fp = sum(f and not b for f, b in zip(flagged, bad))
    fn = sum(b and not f for f, b in zip(flagged, bad))
    tn = sum(not f and not b for f, b in zip(flagged, bad))
    n = tp + fp + fn + tn
    observed = (tp + tn) / n if n else 0.0
    expected = (((tp + fp) * (tp + fn)) + ((fn + tn) * (fp + tn))) / (n * n) if n else 0.0
    kappa = (observed - expected) / (1 - expected) if n and expected < 1 else 0.0
    return {
        "flagged_bad": tp,
        "flagged_good": fp,
        "missed_bad": fn,
        "passed_good": tn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "false_alarm_rate": round(fp / (fp + tn), 3) if fp + tn else None,
        "cohen_kappa": round(kappa, 3),
    }


def unmeasured(labelled: int, bad: int) -> list[str]:
    """What these labels cannot measure, in words for the state file and the report."""
    good = labelled - bad
    out = []
    if labelled and labelled < MIN_LABELLED:
        out.append(
            f"keep/drop decisions: only {labelled} labelled trace(s), at least {MIN_LABELLED} are needed, "
            "so every code scorer is kept"
        )
    if labelled and not bad:
        out.append(
            "recall and precision: no labelled trace is bad, so there is nothing to catch "
            "(only false alarms are measured)"
        )
    if labelled and not good:
        out.append("false-alarm rate: no labelled trace is good (only recall is measured)")
    return out


def meta_evaluate(
    rows: list[dict[str, Any]], findings: list[dict[str, Any]], label_name: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Score every code finding against the labels: (the summary, one record per finding id with
    its `agreement`, whether it is `kept` and the `kept_reason`). The findings are not changed: the
    analyzer adds the records to them, in one place.

    Works with any number of labels: what the labels cannot measure (too few of them, or all of one
    class) is listed under `unmeasured`, and a measure without data is None, never a guess.
    """
    labelled = [r for r in rows if r.get("label") is not None]
    if not labelled:
        return {
            "label": label_name,
            "labelled": 0,
            "kept": [],
            "dropped": [],
            "unmeasured": ["everything: no labelled trace"],
            "note": f"no trace carries a yes/no feedback named '{label_name}': nothing to measure against",
        }, {}
    bad = [r["label"] is False for r in labelled]
    base_rate = sum(bad) / len(bad)
    learned = learn(findings, {r["trace_id"]: r["label"] is True for r in labelled}, rows=rows)
    chosen = set(learned.get("chosen", ()))
    kept, dropped = [], []
    records: dict[str, dict[str, Any]] = {}
    for f in findings:
        if f.get("scorer", "code") != "code":
            continue
        failing = set(f.get("all_evidence") or ())
        stats = confusion([r["trace_id"] in failing for r in labelled], bad)
        outlier = bool((f.get("params") or {}).get("report_only"))
        record: dict[str, Any] = {"agreement": stats}
        seen = (
            f"flags {stats['flagged_bad']} of {sum(bad)} bad and {stats['flagged_good']} of "
            f"{len(bad) - sum(bad)} good labelled traces"
        )
        if not learned["learned"]:
            keep, reason = True, learned["reason"]
        elif f["id"] in chosen and outlier:
            keep, reason = True, f"labels show these outliers fail: {seen}, counted as failures"
            params = {k: v for k, v in f["params"].items() if k != "report_only"}
            record.update(
                params=params,
                severity="medium",
                threshold_rationale=f"{f['threshold_rationale']}; labelled evidence: {seen}, so counted as failures",
            )
        elif f["id"] in chosen:
            keep = True
            reason = (
                "flags no labelled trace: no evidence either way"
                if not stats["flagged_bad"] + stats["flagged_good"]
                else f"adds signal: {seen}, precision {stats['precision']:.2f} above the {base_rate:.2f} base rate, "
                f"kappa {stats['cohen_kappa']:.2f}"
            )
        elif outlier:
            keep, reason = True, f"an outlier without signal in the labels ({seen}): still reported, not a failure"
        else:
            keep, reason = (
                False,
                f"no signal: {seen}, precision {stats['precision'] or 0:.2f} vs base rate {base_rate:.2f}, "
                f"kappa {stats['cohen_kappa']:.2f}",
            )
        record.update(kept=keep, kept_reason=reason)
        records[f["id"]] = record
        (kept if keep else dropped).append(f["id"])
    failing_ids = [
        fid
        for fid in kept
        if not (records[fid].get("params") or next(f for f in findings if f["id"] == fid).get("params") or {}).get(
            "report_only"
        )
    ]
    union = set().union(*[set(f.get("all_evidence") or ()) for f in findings if f["id"] in failing_ids])
    signals = learned.get("signals") or {}
    if signals:
        signalled = [r for r in labelled if any(rule_holds(r, c)[0] for c in signals.values())]
        union |= {r["trace_id"] for r in signalled}
        stats = confusion([r in signalled for r in labelled], bad)
        records[LABELLED_SIGNALS] = {
            "agreement": stats,
            "kept": True,
            "kept_reason": f"chosen on the labels: flags {stats['flagged_bad']} of {sum(bad)} bad and "
            f"{stats['flagged_good']} of {len(bad) - sum(bad)} good labelled traces",
        }
    missing = unmeasured(len(labelled), sum(bad))
    note = (
        (
            "labels chose the scorers a trace fails on"
            + (" and thresholds on the agent's own counts" if signals else "")
            + " (cross-validated on the labelled traces)"
        )
        if learned["learned"]
        else "labels only measured the scorers: " + learned["reason"]
    )
    return {
        "label": label_name,
        "labelled": len(labelled),
        "bad": sum(bad),
        "good": len(bad) - sum(bad),
        "base_rate_bad": round(base_rate, 3),
        "kept": kept,
        "dropped": dropped,
        "combined": confusion([r["trace_id"] in union for r in labelled], bad),
        "learned": learned,
        "unmeasured": missing,
        "note": note + ("; not measured: " + "; ".join(missing) if missing else ""),
    }, records


def signals_candidate(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The finding the labels' chosen thresholds become (None when they chose none): one rule scorer that
    fails a trace when any threshold holds, its rationale naming each threshold and its labelled counts."""
    learned = meta.get("learned") or {}
    signals = learned.get("signals") or {}
    if not learned.get("learned") or not signals:
        return None
    evidence = learned.get("evidence") or {}
    said = [
        f"{signal_text(sid)} (flags {evidence[sid]['flagged_bad']} of {evidence[sid]['bad']} bad and "
        f"{evidence[sid]['flagged_good']} of {evidence[sid]['good']} good labelled traces)"
        for sid in signals
    ]
    cv = learned["cross_validation"]
    return {
        "id": LABELLED_SIGNALS,
        "check": "rule",
        "scorer": "code",
        "title": "What the labels tie to failures",
        "severity": "medium",
        "description": f"Thresholds on this agent's own counts that its '{meta['label']}' labels tie to failures.",
        "params": {
            "fail_when": {"any": list(signals.values())},
            "message": f"a threshold the '{meta['label']}' labels tie to failures holds",
        },
        "threshold_rationale": " or ".join(said)
        + f"; chosen on the labels to maximize recall minus {FALSE_ALARM_COST:g} x false-alarm rate, "
        f"cross-validated on them: {cv['flagged_bad']}/{cv['bad']} bad and {cv['flagged_good']}/{cv['good']} "
        "good flagged out of sample",
    }


def fmt_rate(value: float | None) -> str:
    """A rate for a message: `n/a` when there was nothing to measure it on."""
    return "n/a" if value is None else f"{value:.2f}"
