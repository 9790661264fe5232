"""Meta-evaluation: how well each code scorer agrees with labels people already gave.

Labels (user thumbs, reviewer verdicts: any yes/no feedback named with `--labels`) never shape a
finding or a threshold; they only measure the finished scorers and decide which ones add signal.
"""

from __future__ import annotations

from typing import Any

MIN_LABELLED = 10  # below this, agreement numbers are noise: report, don't drop


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
    kept, dropped = [], []
    records: dict[str, dict[str, Any]] = {}
    for f in findings:
        if f.get("scorer", "code") != "code":
            continue
        failing = set(f.get("all_evidence") or ())
        stats = confusion([r["trace_id"] in failing for r in labelled], bad)
        if len(labelled) < MIN_LABELLED:
            keep, reason = True, f"only {len(labelled)} labelled traces: too few to judge"
        elif not any(bad) or all(bad):
            keep, reason = True, "every labelled trace has the same label: no evidence either way"
        elif stats["flagged_bad"] + stats["flagged_good"] == 0:
            keep, reason = True, "flags no labelled trace: no evidence either way"
        elif stats["cohen_kappa"] > 0 and (stats["precision"] or 0) > base_rate:
            keep, reason = (
                True,
                (
                    f"adds signal: precision {stats['precision']:.2f} above the {base_rate:.2f} base rate of bad traces, "
                    f"kappa {stats['cohen_kappa']:.2f}"
                ),
            )
        else:
            keep, reason = (
                False,
                (
                    f"no signal: precision {stats['precision'] or 0:.2f} vs base rate {base_rate:.2f}, "
                    f"kappa {stats['cohen_kappa']:.2f}"
                ),
            )
        records[f["id"]] = {"agreement": stats, "kept": keep, "kept_reason": reason}
        (kept if keep else dropped).append(f["id"])
    union = set().union(*[set(f.get("all_evidence") or ()) for f in findings if f["id"] in kept]) if kept else set()
    missing = unmeasured(len(labelled), sum(bad))
    note = "labels only measured the scorers; findings and thresholds come from unlabelled traces"
    return {
        "label": label_name,
        "labelled": len(labelled),
        "bad": sum(bad),
        "good": len(bad) - sum(bad),
        "base_rate_bad": round(base_rate, 3),
        "kept": kept,
        "dropped": dropped,
        "combined": confusion([r["trace_id"] in union for r in labelled], bad),
        "unmeasured": missing,
        "note": note + ("; not measured: " + "; ".join(missing) if missing else ""),
    }, records


def fmt_rate(value: float | None) -> str:
    """A rate for a message: `n/a` when there was nothing to measure it on."""
    return "n/a" if value is None else f"{value:.2f}"
