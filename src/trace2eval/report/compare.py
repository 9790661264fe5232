"""What changed since the previous session of the same experiment.

Sessions of one experiment live side by side (`sessions/<id>/`, or the same Volume folder for a
nightly job), so the previous one is the newest sibling folder created before this one for the same
experiment. Everything is compared from state files only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session


def find_previous(session: Session) -> Session | None:
    """The newest sibling session of the same experiment created before this one."""
    try:
        plan = session.plan()
    except Exception:
        return None
    me = (plan.created_at, session.id)
    best: tuple[tuple[str, str], Session] | None = None
    try:
        siblings = [p for p in session.dir.parent.iterdir() if p.is_dir() and p != session.dir]
    except OSError:
        return None
    for folder in siblings:
        if not (folder / "eval_tasks.json").exists() or not (folder / "state" / "analysis.json").exists():
            continue
        try:
            other = Session(folder.resolve())
            other_plan = other.plan()
        except Exception:
            continue  # a corrupt or foreign folder is not a previous session
        if str(other_plan.experiment_id) != str(plan.experiment_id):
            continue
        key = (other_plan.created_at, other.id)
        if key < me and (best is None or key > best[0]):
            best = (key, other)
    return best[1] if best else None


@dataclass
class Change:
    """One compared quantity: before, now, and how to read the difference."""

    name: str
    before: Any
    now: Any
    delta: float | None = None
    better: bool | None = None  # None when the change is neutral or unknown
    unit: str = ""


@dataclass
class Changes:
    previous_id: str
    previous_dir: Path
    previous_created_at: str
    overview: list[Change] = field(default_factory=list)
    new_findings: list[dict[str, Any]] = field(default_factory=list)
    resolved_findings: list[dict[str, Any]] = field(default_factory=list)
    finding_changes: list[Change] = field(default_factory=list)
    metric_changes: list[Change] = field(default_factory=list)
    new_query_types: list[str] = field(default_factory=list)
    gone_query_types: list[str] = field(default_factory=list)
    added_scorers: list[str] = field(default_factory=list)
    removed_scorers: list[str] = field(default_factory=list)

    @property
    def previous_metrics(self) -> dict[str, float]:
        return {c.name: c.before for c in self.metric_changes if isinstance(c.before, (int, float))}

    def headline(self) -> str:
        """One sentence for the top of the report."""
        parts = []
        if self.new_findings:
            parts.append(f"{len(self.new_findings)} new finding(s)")
        if self.resolved_findings:
            parts.append(f"{len(self.resolved_findings)} resolved")
        worse = [c for c in self.finding_changes + self.metric_changes if c.better is False]
        better = [c for c in self.finding_changes + self.metric_changes if c.better is True]
        if worse:
            parts.append(f"{len(worse)} got worse")
        if better:
            parts.append(f"{len(better)} improved")
        return ", ".join(parts) if parts else "no material change"


def _read(session: Session, path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
        return data if isinstance(data, dict) else {}
    except Exception:
        return {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _change(
    name: str, before: Any, now: Any, higher_is_better: bool | None, unit: str = "", min_delta: float = 1e-9
) -> Change:
    b, n = _num(before), _num(now)
    delta = None if b is None or n is None else n - b
    better = None
    if delta is not None and higher_is_better is not None and abs(delta) > min_delta:
        better = (delta > 0) == higher_is_better
    return Change(name, before, now, delta, better, unit)


def _rate(finding: dict[str, Any]) -> float | None:
    return _num((finding.get("prevalence") or {}).get("rate"))


def compare(current: Session, previous: Session) -> Changes:
    """Differences between two sessions of the same experiment, from their state files."""
    a_now, a_before = _read(current, current.analysis_file), _read(previous, previous.analysis_file)
    v_now, v_before = _read(current, current.validation_file), _read(previous, previous.validation_file)
    d_now, d_before = _read(current, current.dataset_json), _read(previous, previous.dataset_json)
    s_now, s_before = _read(current, current.scorer_specs_file), _read(previous, previous.scorer_specs_file)

    changes = Changes(previous.id, previous.dir, previous.plan().created_at)
    t_now, t_before = a_now.get("trace_summary") or {}, a_before.get("trace_summary") or {}

    def error_rate(summary: dict[str, Any]) -> float | None:
        total = _num(summary.get("total_analyzed"))
        errors = _num(summary.get("error_count"))
        return None if not total or errors is None else errors / total

    lat_now, lat_before = t_now.get("latency_ms") or {}, t_before.get("latency_ms") or {}
    changes.overview = [
        _change("traces analyzed", t_before.get("total_analyzed"), t_now.get("total_analyzed"), None),
        _change("error rate", error_rate(t_before), error_rate(t_now), False, "%"),
        _change("latency p50", lat_before.get("p50"), lat_now.get("p50"), False, "ms"),
        _change("latency p95", lat_before.get("p95"), lat_now.get("p95"), False, "ms"),
        _change("findings", len(a_before.get("findings") or []), len(a_now.get("findings") or []), False),
        _change("dataset rows", len(d_before.get("rows") or []), len(d_now.get("rows") or []), None),
    ]
    status_before, status_now = v_before.get("validation_status"), v_now.get("validation_status")
    if status_before or status_now:
        changes.overview.append(
            Change(
                "validation",
                status_before or "not run",
                status_now or "not run",
                None,
                None if status_before == status_now else status_now == "passed",
            )
        )

    f_now = {f.get("id"): f for f in a_now.get("findings") or [] if f.get("id")}
    f_before = {f.get("id"): f for f in a_before.get("findings") or [] if f.get("id")}
    changes.new_findings = [f_now[k] for k in f_now if k not in f_before]
    changes.resolved_findings = [f_before[k] for k in f_before if k not in f_now]
    for fid in f_now:
        if fid in f_before:
            # prevalence moves a little with every sample; half a point is noise, not news
            changes.finding_changes.append(_change(fid, _rate(f_before[fid]), _rate(f_now[fid]), False, "%", 0.005))

    m_now, m_before = v_now.get("metrics") or {}, v_before.get("metrics") or {}
    for name in sorted(set(m_now) | set(m_before)):
        if name.endswith("/mean"):
            changes.metric_changes.append(_change(name, m_before.get(name), m_now.get(name), True, "%", 1e-6))

    q_now = {q.get("name") for q in a_now.get("query_types") or []}
    q_before = {q.get("name") for q in a_before.get("query_types") or []}
    changes.new_query_types = sorted(n for n in q_now - q_before if n)
    changes.gone_query_types = sorted(n for n in q_before - q_now if n)

    sc_now = {s.get("name") for s in s_now.get("scorers") or []}
    sc_before = {s.get("name") for s in s_before.get("scorers") or []}
    changes.added_scorers = sorted(n for n in sc_now - sc_before if n)
    changes.removed_scorers = sorted(n for n in sc_before - sc_now if n)
    return changes
