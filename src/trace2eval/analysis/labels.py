"""Learn from a few labels: which code scorers to keep, which outliers count as failures, and how well
the combination does on labelled traces it was not chosen on.

The combination is deliberately simple enough to read in the generated `scorers.py`: a trace fails
when any kept scorer fails it. A scorer is kept (and an outlier scorer counts as a failure) when, on
the labelled traces, it flags at least one bad trace, its precision is above the share of bad traces
and its agreement (Cohen's kappa) is positive. How well that rule generalizes is estimated by
stratified k-fold cross-validation **on the labelled traces only**: each fold's choice is made on the
other folds and scored on it; the pooled counts and a Wilson 95% interval are reported.

The label-chosen combination replaces the unlabelled suite only when it does better out of sample
(cross-validated recall minus false-alarm rate); otherwise the suite stands and the reason is said.
With fewer than MIN_LABELLED labels, or fewer than MIN_PER_CLASS of either class, nothing is learned:
the unlabelled suite stands and the reason is said.
"""

from __future__ import annotations

import math
import random
from typing import Any

MIN_LABELLED = 10
MIN_PER_CLASS = 3
MAX_FOLDS = 5


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of hits/n (None without data): honest for small n and rates near 0 or 1."""
    if n <= 0:
        return None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3)


def too_few(labels: dict[str, bool]) -> str | None:
    """Why these labels are too few to learn from, or None when they are enough."""
    bad = sum(not v for v in labels.values())
    good = len(labels) - bad
    if len(labels) < MIN_LABELLED:
        return f"only {len(labels)} labelled trace(s), at least {MIN_LABELLED} are needed to learn from labels"
    if min(bad, good) < MIN_PER_CLASS:
        return f"{bad} bad and {good} good labelled traces: at least {MIN_PER_CLASS} of each are needed"
    return None


def _signal(flagged: set[str], labels: dict[str, bool]) -> tuple[bool, dict[str, int]]:
    """Whether a scorer flagging `flagged` adds signal on these labels, with its counts."""
    tp = sum(1 for t, ok in labels.items() if not ok and t in flagged)
    fp = sum(1 for t, ok in labels.items() if ok and t in flagged)
    bad = sum(not ok for ok in labels.values())
    n = len(labels)
    fn, tn = bad - tp, n - bad - fp
    counts = {"flagged_bad": tp, "bad": bad, "flagged_good": fp, "good": n - bad}
    if not tp or not n:
        return False, counts
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 0.0
    return tp / (tp + fp) > bad / n and kappa > 0, counts


def choose(flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str]) -> list[str]:
    """The scorers (ids of `flags`) a trace fails on, their OR being the learned combination: those that
    add signal on `labels`, and failure checks (`gating`, not outliers) that flag no labelled trace (no
    evidence either way)."""
    return [
        fid
        for fid, flagged in flags.items()
        if _signal(flagged, labels)[0] or (fid in gating and not flagged & labels.keys())
    ]


def folds(labels: dict[str, bool], seed: int = 0) -> list[set[str]]:
    """Stratified folds: each holds its share of bad and of good traces."""
    bad = sorted(t for t, ok in labels.items() if not ok)
    good = sorted(t for t, ok in labels.items() if ok)
    k = max(2, min(MAX_FOLDS, len(bad), len(good)))
    rng = random.Random(seed)
    rng.shuffle(bad)
    rng.shuffle(good)
    out: list[set[str]] = [set() for _ in range(k)]
    for i, t in enumerate(bad + good):
        out[i % k].add(t)
    return out


def unlabelled(flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str]) -> list[str]:
    """The suite as the unlabelled analysis wrote it: every failure check, outliers only reported."""
    return [fid for fid in flags if fid in gating]


STRATEGIES = {"unlabelled": unlabelled, "learned": choose}


def cross_validate(
    flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str], seed: int = 0, strategy=choose
) -> dict[str, Any]:
    """Out-of-sample counts of a strategy's combination: chosen on k-1 folds, scored on the held-out one."""
    tp = fp = 0
    for held in folds(labels, seed):
        train = {t: v for t, v in labels.items() if t not in held}
        chosen = strategy(flags, train, gating)
        flagged = set().union(*(flags[c] for c in chosen)) if chosen else set()
        tp += sum(1 for t in held if not labels[t] and t in flagged)
        fp += sum(1 for t in held if labels[t] and t in flagged)
    bad = sum(not v for v in labels.values())
    good = len(labels) - bad
    return {
        "folds": len(folds(labels, seed)),
        "flagged_bad": tp,
        "bad": bad,
        "flagged_good": fp,
        "good": good,
        "recall": round(tp / bad, 3) if bad else None,
        "recall_95": wilson(tp, bad),
        "false_alarm_rate": round(fp / good, 3) if good else None,
        "false_alarm_95": wilson(fp, good),
    }


def learn(findings: list[dict[str, Any]], labels: dict[str, bool], seed: int = 0) -> dict[str, Any]:
    """What the labels say about the code findings.

    Returns {"learned": bool, "reason" | "chosen", "cross_validation", "evidence": {id: counts}}.
    Never raises on a small or one-sided label set: it says why nothing was learned.
    """
    flags = {f["id"]: set(f.get("all_evidence") or ()) for f in findings if f.get("scorer", "code") == "code"}
    gating = {f["id"] for f in findings if f["id"] in flags and not (f.get("params") or {}).get("report_only")}
    reason = too_few(labels)
    if reason:
        return {"learned": False, "reason": reason + "; the unlabelled suite stands"}
    # Which is better on traces it was not chosen on, the label-chosen combination or the unlabelled suite
    # (recall minus false-alarm rate, cross-validated)? A few labels often cannot beat the suite: then it stands.
    scored = {name: cross_validate(flags, labels, gating, seed, fn) for name, fn in STRATEGIES.items()}
    youden = {n: (cv["recall"] or 0.0) - (cv["false_alarm_rate"] or 0.0) for n, cv in scored.items()}
    best = "learned" if youden["learned"] > youden["unlabelled"] else "unlabelled"
    return {
        "learned": best == "learned",
        "strategy": best,
        "chosen": STRATEGIES[best](flags, labels, gating),
        "evidence": {fid: _signal(flagged, labels)[1] for fid, flagged in flags.items()},
        "cross_validation": scored[best],
        "cross_validation_other": scored["unlabelled" if best == "learned" else "learned"],
        **(
            {}
            if best == "learned"
            else {
                "reason": "on the labelled traces the label-chosen scorers did not beat the unlabelled suite "
                f"out of sample (recall minus false-alarm rate {youden['learned']:.2f} vs {youden['unlabelled']:.2f}); "
                "the unlabelled suite stands"
            }
        ),
    }
