"""Learn from a few labels: which code scorers to keep, which outliers count as failures, which of the
agent's plain counts the labels tie to failures, and how well the combination does on labelled traces
it was not chosen on.

The combination is deliberately simple enough to read in the generated `scorers.py`: a trace fails
when any kept scorer fails it. Three combinations compete:
- `unlabelled`: the suite as the analysis wrote it;
- `learned`: a failure check is kept when, on the labelled traces, it flags at least one bad trace, its
  precision is above the share of bad traces and its agreement (Cohen's kappa) is positive (or it flags
  no labelled trace); a reported scorer (an outlier, weak evidence) counts as a failure only when, added
  one at a time like a threshold below, it catches at least MIN_SIGNAL_BAD more bad traces and improves
  the objective;
- `signals`: `learned`, plus up to MAX_SIGNALS thresholds on named features every trace has (LEARNABLE:
  "20 or more tool calls", "a hand-off") chosen one at a time while each adds at least MIN_SIGNAL_BAD
  bad traces and improves the objective. They become one rule scorer, `labelled_signals`, whose
  conditions and labelled counts are written into `scorers.py`.

The objective is recall minus FALSE_ALARM_COST times the false-alarm rate. How well each combination
generalizes is estimated by stratified k-fold cross-validation **on the labelled traces only**: each
fold's choice is made on the other folds and scored on it; the pooled counts and a Wilson 95% interval
are reported. A label-chosen combination replaces the unlabelled suite only when it does better out of
sample; otherwise the suite stands and the reason is said. With fewer than MIN_LABELLED labels, or fewer
than MIN_PER_CLASS of either class, nothing is learned: the unlabelled suite stands and the reason is said.
"""

from __future__ import annotations

import math
import random
from typing import Any

from trace2eval.analysis.stats import content_order, conversation_text
from trace2eval.traces.checks import rule_holds

MIN_LABELLED = 10
MIN_PER_CLASS = 3
MAX_FOLDS = 5
# A false alarm sends a reviewer to a healthy conversation, and a label-chosen threshold that trades
# one caught failure for one false alarm usually does worse out of sample: false alarms count double.
FALSE_ALARM_COST = 2.0
MAX_SIGNALS = 3  # more thresholds than this, chosen on a few dozen labels, fit the labels, not the agent
MIN_SIGNAL_BAD = 2  # a threshold must catch this many more bad labelled traces: one is chance
MAX_CUTS = 9  # thresholds tried per feature: its distinct values, or its deciles when it has more
# Plain counts and flags every agent's traces carry, read the same way in any domain. Labels decide which
# of them (if any) tell this agent's failures apart, and at which threshold, in either direction.
LEARNABLE = (
    "n_tool_calls",
    "n_write_calls",
    "n_distinct_tools",
    "n_tool_errors",
    "llm_calls",
    "max_same_tool_streak",
    "max_identical_calls",
    "n_user_turns",
    "n_user_repeats",
    "duration_ms",
    "tokens_in",
    "tokens_out",
    "answer_chars",
    "gives_up",
    "handoff",
    "need_open",
)
SIGNAL_PREFIX = "signal:"


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


def choose(
    flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str], signals: dict[str, set[str]] | None = None
) -> list[str]:
    """The scorers (ids of `flags`) a trace fails on, their OR being the learned combination: failure checks
    (`gating`) that add signal on `labels` or flag no labelled trace (no evidence either way); then reported
    scorers (outliers, weak evidence) that, added one at a time, most improve the objective, each catching
    at least MIN_SIGNAL_BAD more bad traces. A reported scorer fires on good conversations too: it counts
    only where it adds failures the others miss, at a price the objective accepts."""
    chosen = [
        fid
        for fid, flagged in flags.items()
        if fid in gating and (_signal(flagged, labels)[0] or not flagged & labels.keys())
    ]
    reported = {fid: flagged for fid, flagged in flags.items() if fid not in gating and _signal(flagged, labels)[0]}
    return _add_greedily(chosen, flags, reported, labels)


def _add_greedily(
    chosen: list[str], flags: dict[str, set[str]], extra: dict[str, set[str]], labels: dict[str, bool]
) -> list[str]:
    """`chosen` plus the ids of `extra` that, added one at a time, most improve the objective on `labels`,
    each catching at least MIN_SIGNAL_BAD more bad traces (at most MAX_SIGNALS)."""
    chosen = list(chosen)
    flagged = set().union(*(flags[c] for c in chosen)) if chosen else set()
    bad = {t for t, ok in labels.items() if not ok}
    best = objective(flagged, labels)
    for _ in range(MAX_SIGNALS):
        top = None
        for sid, ids in extra.items():  # in a fixed order: ties go to the first, so runs repeat
            if sid in chosen or len((ids - flagged) & bad) < MIN_SIGNAL_BAD:
                continue
            value = objective(flagged | ids, labels)
            if value > best + 1e-9:
                best, top = value, sid
        if top is None:
            break
        chosen.append(top)
        flagged |= extra[top]
    return chosen


def folds(labels: dict[str, bool], seed: int = 0, keys: dict[str, str] | None = None) -> list[set[str]]:
    """Stratified folds: each holds its share of bad and of good traces.

    Traces are ordered by a hash of `keys` (the text a trace keeps across loads: its request and
    answer) before the seeded shuffle, not by trace id: MLflow gives a trace a new id each time it is
    logged, and the same conversations with the same labels must get the same folds."""
    keys = keys or {}
    bad = content_order(sorted(t for t, ok in labels.items() if not ok), lambda t: keys.get(t, t))
    good = content_order(sorted(t for t, ok in labels.items() if ok), lambda t: keys.get(t, t))
    k = max(2, min(MAX_FOLDS, len(bad), len(good)))
    rng = random.Random(seed)
    rng.shuffle(bad)
    rng.shuffle(good)
    out: list[set[str]] = [set() for _ in range(k)]
    for i, t in enumerate(bad + good):
        out[i % k].add(t)
    return out


def unlabelled(
    flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str], signals: dict[str, set[str]] | None = None
) -> list[str]:
    """The suite as the unlabelled analysis wrote it: every failure check, outliers only reported."""
    return [fid for fid in flags if fid in gating]


def score(recall: float | None, false_alarm_rate: float | None) -> float:
    """What the labels maximize: recall minus FALSE_ALARM_COST x the false-alarm rate (a missing rate is 0)."""
    return (recall or 0.0) - FALSE_ALARM_COST * (false_alarm_rate or 0.0)


def objective(flagged: set[str], labels: dict[str, bool]) -> float:
    """`score` of flagging `flagged`, on `labels`."""
    bad = [t for t, ok in labels.items() if not ok]
    good = [t for t, ok in labels.items() if ok]
    recall = sum(t in flagged for t in bad) / len(bad) if bad else 0.0
    false_alarms = sum(t in flagged for t in good) / len(good) if good else 0.0
    return score(recall, false_alarms)


def signal_text(sid: str) -> str:
    """A threshold's id as it reads: 'n_tool_calls >= 12'."""
    return sid.removeprefix(SIGNAL_PREFIX)


def with_signals(
    flags: dict[str, set[str]], labels: dict[str, bool], gating: set[str], signals: dict[str, set[str]] | None = None
) -> list[str]:
    """`choose`, plus the thresholds (ids of `signals`) that, added one at a time, most improve the
    objective on `labels`, each catching at least MIN_SIGNAL_BAD more bad traces (at most MAX_SIGNALS)."""
    signals = signals or {}
    return _add_greedily(choose(flags, labels, gating), {**flags, **signals}, signals, labels)


STRATEGIES = {"unlabelled": unlabelled, "learned": choose, "signals": with_signals}


def _cuts(values: list[Any]) -> list[Any]:
    distinct = sorted(set(values))
    if len(distinct) <= MAX_CUTS:
        return distinct
    ordered = sorted(values)
    return sorted({ordered[len(ordered) * k // 10] for k in range(1, 10)})


def signal_conditions(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every threshold the labels may choose, {id: rule condition}: for each LEARNABLE feature the
    rows carry, `>= v` and `<= v` at its cut points (`== True` for a flag). Thresholds come from the
    values alone, never from the labels."""
    out: dict[str, dict[str, Any]] = {}
    for name in LEARNABLE:
        values = [r[name] for r in rows if isinstance(r.get(name), (bool, int, float))]
        if len(set(values)) < 2:
            continue
        if all(isinstance(v, bool) for v in values):
            out[f"{SIGNAL_PREFIX}{name} == True"] = {"feature": name, "op": "==", "value": True}
            continue
        cuts = _cuts([float(v) for v in values])
        for v in cuts[1:]:
            out[f"{SIGNAL_PREFIX}{name} >= {v:g}"] = {"feature": name, "op": ">=", "value": v}
        for v in cuts[:-1]:
            out[f"{SIGNAL_PREFIX}{name} <= {v:g}"] = {"feature": name, "op": "<=", "value": v}
    return out


def cross_validate(
    flags: dict[str, set[str]],
    labels: dict[str, bool],
    gating: set[str],
    seed: int = 0,
    strategy=choose,
    signals: dict[str, set[str]] | None = None,
    keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Out-of-sample counts of a strategy's combination: chosen on k-1 folds, scored on the held-out one."""
    every = {**flags, **(signals or {})}
    tp = fp = 0
    split = folds(labels, seed, keys)
    for held in split:
        train = {t: v for t, v in labels.items() if t not in held}
        chosen = strategy(flags, train, gating, signals)
        flagged = set().union(*(every[c] for c in chosen)) if chosen else set()
        tp += sum(1 for t in held if not labels[t] and t in flagged)
        fp += sum(1 for t in held if labels[t] and t in flagged)
    bad = sum(not v for v in labels.values())
    good = len(labels) - bad
    return {
        "folds": len(split),
        "flagged_bad": tp,
        "bad": bad,
        "flagged_good": fp,
        "good": good,
        "recall": round(tp / bad, 3) if bad else None,
        "recall_95": wilson(tp, bad),
        "false_alarm_rate": round(fp / good, 3) if good else None,
        "false_alarm_95": wilson(fp, good),
    }


def learn(
    findings: list[dict[str, Any]],
    labels: dict[str, bool],
    seed: int = 0,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the labels say about the code findings (and, given the units' feature `rows`, about the
    LEARNABLE features' thresholds).

    Returns {"learned": bool, "strategy", "reason" | "chosen", "signals": {id: condition},
    "cross_validation", "cross_validation_other", "evidence": {id: counts}}.
    Never raises on a small or one-sided label set: it says why nothing was learned.
    """
    flags = {f["id"]: set(f.get("all_evidence") or ()) for f in findings if f.get("scorer", "code") == "code"}
    gating = {f["id"] for f in findings if f["id"] in flags and not (f.get("params") or {}).get("report_only")}
    reason = too_few(labels)
    if reason:
        return {"learned": False, "reason": reason + "; the unlabelled suite stands"}
    conditions = signal_conditions(rows or [])
    signals = {sid: {r["trace_id"] for r in rows or () if rule_holds(r, cond)[0]} for sid, cond in conditions.items()}
    keys = {r["trace_id"]: conversation_text(r) for r in rows or ()}
    # Which does best on traces it was not chosen on (cross-validated `objective`)? A few labels often
    # cannot beat the unlabelled suite: then it stands. A tie goes to the simpler combination.
    scored = {name: cross_validate(flags, labels, gating, seed, fn, signals, keys) for name, fn in STRATEGIES.items()}
    value = {n: score(cv["recall"], cv["false_alarm_rate"]) for n, cv in scored.items()}
    best = "unlabelled"
    for name in ("learned", "signals"):
        if value[name] > value[best] + 1e-9:
            best = name
    chosen = STRATEGIES[best](flags, labels, gating, signals)
    every = {**flags, **signals}
    runner_up = max((n for n in STRATEGIES if n != best), key=lambda n: value[n])
    return {
        "learned": best != "unlabelled",
        "strategy": best,
        "chosen": chosen,
        "signals": {sid: conditions[sid] for sid in chosen if sid in conditions},
        "evidence": {fid: _signal(every[fid], labels)[1] for fid in [*flags, *(c for c in chosen if c in signals)]},
        "cross_validation": scored[best],
        "cross_validation_other": {"strategy": runner_up, **scored[runner_up]},
        **(
            {}
            if best != "unlabelled"
            else {
                "reason": "on the labelled traces the label-chosen combinations did not beat the unlabelled suite "
                f"out of sample (recall minus {FALSE_ALARM_COST:g} x false-alarm rate: scorers chosen "
                f"{value['learned']:.2f}, with thresholds {value['signals']:.2f}, unlabelled "
                f"{value['unlabelled']:.2f}); the unlabelled suite stands"
            }
        ),
    }
