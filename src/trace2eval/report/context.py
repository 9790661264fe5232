"""Everything the report shows, gathered from a session's state files into one plain structure.

State files are read defensively: a session may be half done (a task failed), written by an
older or newer trace2eval (keys added or missing), or copied without its tracking store. Each
section is built from what exists and says what is missing instead of failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trace2eval.errors import SessionError
from trace2eval.report.compare import Changes
from trace2eval.report.links import UiLinks, safe_uri
from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session
from trace2eval.state.versions import upgrade_specs

EVIDENCE_SHOWN = 12
SEVERITY_ORDER = {"critical": -1, "high": 0, "medium": 1, "low": 2, "info": 3}
PUBLISH_FILE = "mlflow_publish.json"


@dataclass
class Evidence:
    trace_id: str
    url: str | None


@dataclass
class ReportContext:
    """The view model both templates render."""

    session_id: str
    generated_at: str
    meta: dict[str, Any]
    status: str  # passed | failed | in progress
    status_detail: str
    links: dict[str, str | None]
    agent: dict[str, Any]
    kpis: list[dict[str, Any]]
    traces: dict[str, Any]
    findings: list[dict[str, Any]]
    error_patterns: list[dict[str, Any]]
    query_types: list[dict[str, Any]]
    coverage: dict[str, Any]
    scorers: dict[str, Any]
    validation: dict[str, Any] | None
    gates: dict[str, Any] | None
    changes: Changes | None
    tasks: list[dict[str, Any]]
    mlflow: dict[str, Any]
    labels: dict[str, Any] | None = None
    # The production monitors' verdicts (report/production.py `summary`), when they were read.
    production: dict[str, Any] | None = None
    candidate: dict[str, Any] | None = None
    charts: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def chart(self, key: str):
        return next((c for c in self.charts if c.key == key), None)


def read_state(path) -> Any:
    """A state file's JSON, or None when it is missing or unreadable (the report shows what exists)."""
    try:
        return read_json(path) if path.exists() else None
    except Exception:
        return None


def read_specs(path: Path) -> Any:
    """scorer_specs.json under the current names (state/versions.py), or as it is when it cannot be upgraded."""
    data = read_state(path)
    try:
        return upgrade_specs(data)
    except SessionError:
        return data


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def as_int(value: Any, default: int = 0) -> int:
    v = _num(value)
    return default if v is None else int(v)


def fmt_ms(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v / 1000:.1f} s" if v >= 1000 else f"{v:.0f} ms"


def fmt_pct(value: Any, digits: int = 0) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}%}"


def fmt_day(ms: Any) -> str:
    v = _num(ms)
    return "–" if v is None else datetime.fromtimestamp(v / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


LIST_SECTIONS = ("findings", "query_types", "error_patterns", "tool_usage", "request_shapes")


def normalized(analysis: Any) -> dict[str, Any]:
    """The analysis with every list section reduced to its dict entries and every summary a dict,
    so the sections below only have to guard individual values."""
    data = dict(_dict(analysis))
    for key in LIST_SECTIONS:
        data[key] = [x for x in _list(data.get(key)) if isinstance(x, dict)]
    for key in ("agent", "trace_summary", "samples"):
        data[key] = _dict(data.get(key))
    return data


# ---------------------------------------------------------------------------------------------


def session_status(plan, validation: dict[str, Any] | None) -> tuple[str, str]:
    failed = [t for t in plan.tasks if t.status == "failed"]
    if validation and validation.get("validation_status") == "passed":
        regressed = validation.get("gate_status") == "regressed"
        return "passed", "the generated suite ran and every scorer produced values" + (
            "; some metrics fell below their gates" if regressed else ""
        )
    if failed:
        t = failed[0]
        return "failed", f"task {t.name} failed: {t.error or 'see eval_tasks.json'}"
    if validation:
        kinds = sorted({p.get("kind", "?") for p in _list(validation.get("problems"))})
        return "failed", "validation failed" + (f": {', '.join(kinds)}" if kinds else "")
    pending = plan.next_pending()
    return "in progress", f"next task: {pending.name}" if pending else "no validation result"


def describe_agent(analysis: dict[str, Any]) -> dict[str, Any]:
    """The agent in a paragraph: the LLM layer's description when there is one, else built from facts."""
    agent = _dict(analysis.get("agent"))
    summary = _dict(analysis.get("trace_summary"))
    tools = _dict(agent.get("tools"))
    written = next(
        (agent[k] for k in ("description", "summary", "purpose") if isinstance(agent.get(k), str) and agent[k].strip()),
        None,
    )
    name = agent.get("name") if isinstance(agent.get("name"), str) else None
    agent_type = str(agent.get("type") or "agent")
    sentences = []
    if written:
        sentences.append(written.strip())
    else:
        top = ", ".join(list(tools)[:5])
        article = "An" if agent_type[:1].lower() in "aeiou" else "A"
        if tools:
            sentences.append(f"{article} {agent_type} using {len(tools)} tools (most used: {top}).")
        elif agent_type != "agent":  # "An agent." says nothing
            sentences.append(f"{article} {agent_type}.")
        subs = _list(agent.get("sub_agents"))
        if subs:
            sentences.append(f"It routes to {len(subs)} sub-agents: {', '.join(map(str, subs[:6]))}.")
        share = _num(agent.get("multi_turn_share"))
        if share is not None and share > 0:
            sentences.append(f"{share:.0%} of conversations have more than one user turn.")
    total = summary.get("total_analyzed")
    if total:
        errors = _num(summary.get("error_count")) or 0
        lat = _dict(summary.get("latency_ms"))
        sentences.append(
            f"{total} traces from {fmt_day(summary.get('first_timestamp_ms'))} to {fmt_day(summary.get('last_timestamp_ms'))}: "
            f"{errors / total:.1%} ended in ERROR, the median trace took {fmt_ms(lat.get('p50'))} (p95 {fmt_ms(lat.get('p95'))})"
            + (
                f" and made {summary['tool_calls_per_trace'].get('p50'):.0f} tool calls"
                if _num(_dict(summary.get("tool_calls_per_trace")).get("p50")) is not None
                else ""
            )
            + "."
        )
    findings = _list(analysis.get("findings"))
    if findings:
        top = max(findings, key=lambda f: _num(_dict(f.get("prevalence")).get("traces")) or 0)
        prev = _dict(top.get("prevalence"))
        sentences.append(
            f"Most common problem: {str(top.get('title') or top.get('id')).lower()} "
            f"({prev.get('traces')} traces, {fmt_pct(prev.get('rate'))})."
        )
    if not sentences:
        sentences.append(
            "Nothing is known about the agent yet: the session stopped before its traces were analyzed"
            if not summary
            else "The traces say little about the agent (no tools, no summary)."
        )
    return {
        "name": name,
        "type": agent_type,
        "paragraph": " ".join(sentences),
        "tools": tools,
        "io": agent.get("io"),
        "root_spans": _dict(agent.get("root_spans")),
    }


def trace_section(analysis: dict[str, Any]) -> dict[str, Any]:
    s = _dict(analysis.get("trace_summary"))
    lat, tok = _dict(s.get("latency_ms")), _dict(s.get("tokens_per_trace"))
    calls, turns = _dict(s.get("tool_calls_per_trace")), _dict(s.get("user_turns_per_trace"))
    population = _dict(analysis.get("population"))
    rows = []
    if population.get("traces") and population.get("traces") != s.get("total_analyzed"):
        rows.append(("traces matching", f"{population['traces']:,}", str(population.get("note") or "")))
    rows += [
        ("traces analyzed", str(s.get("total_analyzed", "–")), str(analysis.get("sample") or "")),
        ("time range", f"{fmt_day(s.get('first_timestamp_ms'))} → {fmt_day(s.get('last_timestamp_ms'))}", "UTC"),
        ("status", ", ".join(f"{k} {v}" for k, v in _dict(s.get("by_status")).items()) or "–", ""),
        ("latency", f"p50 {fmt_ms(lat.get('p50'))} · p95 {fmt_ms(lat.get('p95'))} · max {fmt_ms(lat.get('max'))}", ""),
        (
            "tool calls per trace",
            f"p50 {calls.get('p50', '–')} · p95 {calls.get('p95', '–')} · max {calls.get('max', '–')}",
            "",
        ),
        ("user turns per trace", f"p50 {turns.get('p50', '–')} · max {turns.get('max', '–')}", ""),
    ]
    if tok.get("count"):
        rows.append(
            (
                "tokens per trace",
                f"p50 {tok.get('p50', 0):,.0f} · p95 {tok.get('p95', 0):,.0f}",
                f"{tok['count']} traces report usage; {s.get('total_tokens', 0):,} in total",
            )
        )
    if s.get("without_answer"):
        rows.append(("without an answer", str(s["without_answer"]), ""))
    skipped = _dict(analysis.get("skipped_traces"))
    if as_int(skipped.get("count"), 0):
        first = _dict((_list(skipped.get("traces")) or [{}])[0])
        rows.append(
            (
                "traces skipped",
                str(as_int(skipped.get("count"), 0)),
                f"unreadable, not analyzed (e.g. {first.get('trace_id') or '?'}: {str(first.get('reason') or '')[:160]}); "
                "the list is in state/analysis.json",
            )
        )
    cannot = [str(n) for n in _list(_dict(analysis.get("coverage")).get("notes"))]
    return {"rows": [{"name": a, "value": b, "note": c} for a, b, c in rows], "summary": s, "cannot": cannot}


def findings_section(
    analysis: dict[str, Any],
    links: UiLinks,
    specs: list[dict[str, Any]],
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Findings ranked by severity then prevalence, each with its evidence and what covers it."""
    out = []
    for f in _list(analysis.get("findings")):
        if not isinstance(f, dict) or not f.get("id"):
            continue
        fid = str(f["id"])
        prev = _dict(f.get("prevalence"))
        evidence = [str(t) for t in _list(f.get("evidence"))]
        total = as_int(prev.get("traces"), len(evidence))
        covering = [s for s in specs if s.get("finding") == fid or s.get("name") == fid]
        in_dataset = [r for r in rows if fid in _list(_dict(r.get("metadata")).get("findings"))]
        out.append(
            {
                "id": fid,
                "title": f.get("title") or fid,
                "severity": str(f.get("severity") or "low"),
                "traces": total,
                "rate": prev.get("rate"),
                "rate_text": fmt_pct(prev.get("rate"), 1),
                "description": f.get("description") or "",
                "rationale": f.get("threshold_rationale") or "",
                "examples": [str(e) for e in _list(f.get("examples"))[:3]],
                "evidence": [Evidence(t, links.trace(t)) for t in evidence[:EVIDENCE_SHOWN]],
                "more_evidence": max(0, total - min(EVIDENCE_SHOWN, len(evidence))),
                "query_types": _dict(f.get("query_types")),
                "scorers": [s.get("name") for s in covering],
                "dataset_rows": len(in_dataset),
                "pass_rate": _num(metrics.get(f"{fid}/mean")),
            }
        )
    out.sort(key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9), -f["traces"]))
    mark_overlaps(out, {str(f.get("id")): f for f in _list(analysis.get("findings"))})
    return out


OVERLAP_SHOWN = 0.8


def mark_overlaps(ranked: list[dict[str, Any]], raw: dict[str, dict[str, Any]]) -> None:
    """Say when a finding flags mostly the same traces as one ranked above it: one root cause
    seen by several checks (an error that also empties the answer) should not read as three problems."""
    seen: list[tuple[str, set[str]]] = []
    for f in ranked:
        ids = {str(t) for t in _list(raw.get(f["id"], {}).get("all_evidence"))}
        f["overlap"] = None
        if ids:
            for other, other_ids in seen:
                shared = len(ids & other_ids) / len(ids)
                if shared >= OVERLAP_SHOWN:
                    f["overlap"] = {"with": other, "share": shared}
                    break
            seen.append((f["id"], ids))


def labels_section(analysis: dict[str, Any]) -> dict[str, Any] | None:
    """How each code scorer agrees with the yes/no labels people gave (`--labels`), when measured."""
    meta = _dict(analysis.get("meta_evaluation"))
    if not meta:
        return None
    rows = []
    for f in _list(analysis.get("findings")):
        agreement = _dict(f.get("agreement"))
        if not agreement:
            continue
        rows.append(
            {
                "id": str(f.get("id")),
                "title": f.get("title") or f.get("id"),
                "kept": f.get("kept"),
                "reason": f.get("kept_reason") or "",
                **{
                    k: agreement.get(k)
                    for k in ("precision", "recall", "false_alarm_rate", "cohen_kappa", "flagged_bad", "flagged_good")
                },
            }
        )
    rows.sort(key=lambda r: -(_num(r["precision"]) or 0))
    return {
        "label": meta.get("label"),
        "labelled": meta.get("labelled", 0),
        "bad": meta.get("bad"),
        "good": meta.get("good"),
        "base_rate": meta.get("base_rate_bad"),
        "combined": _dict(meta.get("combined")),
        "kept": _list(meta.get("kept")),
        "dropped": _list(meta.get("dropped")),
        "rows": rows,
        "note": meta.get("note") or "",
    }


def query_type_section(analysis: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    in_dataset: dict[str, int] = {}
    for r in rows:
        qt = _dict(r.get("metadata")).get("query_type")
        if qt:
            in_dataset[qt] = in_dataset.get(qt, 0) + 1
    out = []
    for q in _list(analysis.get("query_types")):
        if not isinstance(q, dict) or not q.get("name"):
            continue
        hits = {k: v for k, v in _dict(q.get("findings")).items() if _num(v)}
        top = max(hits.items(), key=lambda kv: kv[1]) if hits else None
        count = as_int(q.get("count"))
        out.append(
            {
                "name": q["name"],
                "description": q.get("description") or ", ".join(map(str, _list(q.get("terms"))[:4])),
                "count": count,
                "share": count / max(1, as_int(_dict(analysis.get("trace_summary")).get("total_analyzed"), count)),
                "error_rate": q.get("error_rate"),
                "p50": fmt_ms(_dict(q.get("latency_ms")).get("p50")),
                "top_finding": f"{top[0]} ({top[1] / count:.0%})" if top and count else "",
                "example": (_list(q.get("examples")) or [""])[0],
                "dataset_rows": in_dataset.get(q["name"], 0),
            }
        )
    return out


def coverage_section(
    dataset: dict[str, Any] | None, findings: list[dict[str, Any]], query_types: list[dict[str, Any]]
) -> dict[str, Any]:
    rows = _list(_dict(dataset).get("rows"))
    case_types: dict[str, int] = {}
    for r in rows:
        ct = str(_dict(r.get("metadata")).get("case_type") or "sample")
        case_types[ct] = case_types.get(ct, 0) + 1
    uncovered = [f["id"] for f in findings if not f["dataset_rows"]]
    untested = [f["id"] for f in findings if not f["scorers"]]
    types_missing = [q["name"] for q in query_types if not q["dataset_rows"]]
    matrix_cols = [q["name"] for q in query_types][:10]
    matrix = []
    for f in findings:
        counts = {name: 0 for name in matrix_cols}
        for r in rows:
            meta = _dict(r.get("metadata"))
            if f["id"] in _list(meta.get("findings")) and meta.get("query_type") in counts:
                counts[meta["query_type"]] += 1
        matrix.append({"finding": f["id"], "cells": [counts[c] for c in matrix_cols], "total": f["dataset_rows"]})
    return {
        "rows": len(rows),
        "case_types": case_types,
        "skipped": len(_list(_dict(dataset).get("skipped"))),
        "uncovered_findings": uncovered,
        "untested_findings": untested,
        "query_types_missing": types_missing,
        "matrix_cols": matrix_cols,
        "matrix": matrix,
        "available": dataset is not None,
    }


def production_pass_share(analysis: dict[str, Any]) -> float | None:
    """Share of the analyzed traces that no finding flags, when every finding lists all its traces."""
    total = _num(_dict(analysis.get("trace_summary")).get("total_analyzed"))
    findings = _list(analysis.get("findings"))
    if not total or any(not isinstance(_dict(f).get("all_evidence"), list) for f in findings):
        return None
    flagged = {str(t) for f in findings for t in f["all_evidence"]}
    return max(0.0, 1 - len(flagged) / total)


def scorer_section(
    specs_file: dict[str, Any] | None,
    metrics: dict[str, Any],
    gates: dict[str, Any],
    validation: dict[str, Any] | None,
    analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    counts = _dict(_dict(_dict(validation).get("details")).get("scorers"))
    judges_run = bool(_dict(_dict(validation).get("details")).get("judges_run"))
    rates = {
        str(f.get("id")): _num(_dict(f.get("prevalence")).get("rate"))
        for f in _list(_dict(analysis).get("findings"))
        if isinstance(f, dict)
    }
    # a guard is a check no production trace fails
    rates.update({str(g.get("id")): 0.0 for g in _list(_dict(analysis).get("guards")) if isinstance(g, dict)})
    out = []
    for s in _list(_dict(specs_file).get("scorers")):
        if not isinstance(s, dict) or not s.get("name"):
            continue
        name = s["name"]
        implementation = s.get("implementation", "code")
        is_code = implementation in ("code", "rule", "custom_code")
        mean = _num(metrics.get(f"{name}/mean"))
        entry = _dict(gates.get(f"{name}/mean"))
        gate = _num(entry.get("gate"))
        c = _dict(counts.get(name))
        if mean is not None:
            state = "below gate" if entry.get("ok") is False else "ran"  # the gate's own tolerance decides
        elif c.get("errors"):
            state = "errored"
        elif not is_code and not judges_run:
            state = "not run (no judge model)"
        else:
            state = "no value"
        rate = rates.get(str(s.get("finding") or name)) if is_code else None
        out.append(
            {
                # What share of production traces passes the same check (the dataset over-samples failures).
                "production": None if rate is None else max(0.0, 1 - rate),
                "name": name,
                "implementation": implementation,
                "is_code": is_code,
                "finding": s.get("finding"),
                "source": s.get("source", "deterministic"),
                "doc": s.get("doc") or "",
                "guidelines": [str(g) for g in _list(s.get("guidelines"))],
                # a make_judge's whole prompt (the instructions judge quotes the agent's policy): folded away
                "instructions": str(s.get("instructions") or "") if implementation == "make_judge" else "",
                "pass_rate": mean,
                "gate": gate,
                "state": state,
                "scored": f"{c.get('values')}/{c.get('rows')}" if c else "",
            }
        )
    dropped = [d for d in _list(_dict(specs_file).get("dropped")) if isinstance(d, dict)]
    return {
        "rows": out,
        "dropped": dropped,
        "code": sum(s["is_code"] for s in out),
        "judges": sum(not s["is_code"] for s in out),
        "judges_run": judges_run,
    }


def validation_section(validation: dict[str, Any] | None, links: UiLinks, fix_log: Any) -> dict[str, Any] | None:
    if not validation:
        return None
    details = _dict(validation.get("details"))
    checks = [{"name": k, "ok": bool(v)} for k, v in _dict(validation.get("validation_checks")).items()]
    problems = []
    for p in _list(validation.get("problems")):
        if isinstance(p, dict):
            subject = p.get("scorer") or p.get("metric") or ""
            detail = p.get("detail")
            if p.get("kind") == "gate_regression":
                detail = f"gate {p.get('gate')}, now {p.get('value')}"
            problems.append({"kind": p.get("kind", "?"), "subject": subject, "detail": str(detail or "")[:400]})
    return {
        "status": validation.get("validation_status", "?"),
        "run_id": validation.get("run_id"),
        "run_url": links.run(validation.get("run_id")),
        "checks": checks,
        "problems": problems,
        "gate_status": validation.get("gate_status"),
        "rows": details.get("rows"),
        "rows_with_trace": details.get("rows_with_trace"),
        "seconds": details.get("seconds"),
        "attempt": details.get("attempt"),
        "judges_note": details.get("judges_note"),
        "validated_at": details.get("validated_at"),
        "fix_log": _list(fix_log),
    }


def gates_section(gates_file: Any, metrics: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(gates_file, dict):
        return None
    tolerance = _num(gates_file.get("tolerance")) or 0.0
    entries = []
    for name, spec in sorted(_dict(gates_file.get("gates")).items()):
        floor = _num(spec.get("min") if isinstance(spec, dict) else spec)
        tol = _num(spec.get("tolerance")) if isinstance(spec, dict) and spec.get("tolerance") is not None else tolerance
        if floor is None:
            continue
        now = _num(metrics.get(name))
        ok = None if now is None else now >= floor - (tol or 0) - 1e-9
        entries.append({"metric": name, "gate": floor, "tolerance": tol, "now": now, "ok": ok})
    return {"tolerance": tolerance, "entries": entries, "gates": {e["metric"]: e["gate"] for e in entries}}


def candidate_section(session: Session, links: UiLinks) -> dict[str, Any] | None:
    """The latest `trace2eval compare` of this session: per-scorer change with its interval, the flipped rows."""
    data = read_state(session.state_dir / "candidate.json")
    if not isinstance(data, dict) or not isinstance(data.get("scorers"), list):
        return None
    scorers = [s for s in data["scorers"] if isinstance(s, dict)]
    flipped = [
        {**f, "url": links.trace(str(f["source_trace"])) if f.get("source_trace") else None}
        for f in _list(data.get("flipped"))[:20]
        if isinstance(f, dict)
    ]
    return {
        "agent": data.get("agent"),
        "passed": bool(data.get("passed")),
        "rows": as_int(data.get("rows")),
        "answered": as_int(data.get("answered")),
        "errors": as_int(data.get("errors")),
        "no_trace_rows": as_int(data.get("no_trace_rows")),
        "multi_turn_rows": as_int(data.get("multi_turn_rows")),
        "run_url": links.run(data.get("run_id")),
        "run_id": data.get("run_id"),
        "baseline_run": data.get("baseline_run"),
        "scorers": scorers,
        "flipped": flipped,
    }


def task_section(plan) -> list[dict[str, Any]]:
    out = []
    for t in plan.tasks:
        notes = t.error or ", ".join(
            f"{k}={v}" for k, v in t.summary.items() if k != "traceback" and not isinstance(v, (dict, list))
        )
        out.append(
            {
                "name": t.name,
                "status": t.status,
                "attempts": t.attempts,
                "seconds": t.duration_s,
                "notes": str(notes)[:200],
                "description": t.description,
            }
        )
    return out


def kpi_tiles(analysis, findings, coverage, scorers, validation, status, labels=None) -> list[dict[str, Any]]:
    s = _dict(analysis.get("trace_summary"))
    total = s.get("total_analyzed") or 0
    errors = _num(s.get("error_count")) or 0
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
    means = [_num(v) for k, v in _dict(_dict(validation).get("metrics")).items() if k.endswith("/mean")]
    means = [m for m in means if m is not None]
    population = as_int(_dict(analysis.get("population")).get("traces"), total)
    span = f"{fmt_day(s.get('first_timestamp_ms'))} → {fmt_day(s.get('last_timestamp_ms'))}"
    tiles = [
        {
            "label": "traces",
            "value": f"{max(population, total):,}",
            "sub": span if population <= total else f"{total:,} analyzed (sample) · {span}",
        },
        {
            "label": "error rate",
            "value": fmt_pct(errors / total if total else None, 1),
            "sub": f"{int(errors)} traces ended in ERROR",
            "tone": "bad" if total and errors / total > 0.05 else None,
        },
        {
            "label": "latency p50 / p95",
            "value": f"{fmt_ms(_dict(s.get('latency_ms')).get('p50'))}",
            "sub": f"p95 {fmt_ms(_dict(s.get('latency_ms')).get('p95'))}",
        },
        {
            "label": "findings",
            "value": str(len(findings)),
            "sub": " · ".join(
                f"{n} {k}" for k, n in sorted(by_sev.items(), key=lambda kv: SEVERITY_ORDER.get(kv[0], 9))
            )
            or "none",
            "tone": "bad" if by_sev.get("high") else None,
        },
        {
            "label": "dataset",
            "value": f"{coverage['rows']} rows",
            "sub": f"covers {len(findings) - len(coverage['uncovered_findings'])}/{len(findings)} findings",
        },
        {"label": "scorers", "value": f"{scorers['code']} + {scorers['judges']}", "sub": "code checks + LLM judges"},
        *(
            [
                {
                    "label": f"vs labels ({labels['label']})",
                    "value": f"recall {fmt_pct(labels['combined'].get('recall'))}",
                    "sub": f"precision {fmt_pct(labels['combined'].get('precision'))} · {labels['labelled']} labelled",
                }
            ]
            if labels and labels.get("labelled")
            else []
        ),
        {
            "label": "suite",
            "value": status,
            "sub": dataset_pass_text(means, production_pass_share(analysis)),
            "tone": "good" if status == "passed" else "bad" if status == "failed" else None,
        },
    ]
    return tiles


def dataset_pass_text(means: list[float], production: float | None) -> str:
    """The scorers' pass rate on the dataset, worded so it cannot be read as the agent's quality:
    the dataset is drawn to over-sample failures."""
    if not means:
        return "not validated"
    text = f"checks pass on {sum(means) / len(means):.0%} of dataset rows, which over-sample failures by design"
    if production is not None:
        text += f"; {production:.0%} of the production traces analyzed are flagged by no finding"
    return text


def build_context(
    session: Session, changes: Changes | None = None, ui_url: str | None = None, publish: dict[str, Any] | None = None
) -> ReportContext:
    """Read the session's state and shape it for the templates (charts are added by the caller)."""
    plan = session.plan()
    try:
        config = session.config()
        tracking_uri, experiment_id = config.tracking_uri, config.experiment_id
    except Exception:
        tracking_uri, experiment_id = "", plan.experiment_id
    links = UiLinks.for_tracking_uri(tracking_uri, experiment_id, ui_url)
    analysis = normalized(read_state(session.analysis_file)) if session.analysis_file.exists() else {}
    validation = read_state(session.validation_file)
    validation = validation if isinstance(validation, dict) else None
    dataset = read_state(session.dataset_json)
    dataset = dataset if isinstance(dataset, dict) else None
    specs_file = read_specs(session.scorer_specs_file)
    gates_file = read_state(session.evaluation_dir / "eval_gates.json")
    publish = publish if publish is not None else _dict(read_state(session.state_dir / PUBLISH_FILE))
    metrics = _dict(_dict(validation).get("metrics"))
    rows = _list(_dict(dataset).get("rows"))
    specs = [s for s in _list(_dict(specs_file).get("scorers")) if isinstance(s, dict)]

    status, detail = session_status(plan, validation)
    findings = findings_section(analysis, links, specs, metrics, rows)
    query_types = query_type_section(analysis, rows)
    coverage = coverage_section(dataset, findings, query_types)
    gates = gates_section(gates_file, metrics)
    scorers = scorer_section(
        specs_file, metrics, {e["metric"]: e for e in (gates or {}).get("entries", [])}, validation, analysis
    )
    notes = []
    if not analysis.get("trace_summary"):
        notes.append("The analysis has not run yet (state/analysis.json is missing): the report shows the plan only.")
    if links.base is None:
        notes.append(
            "Trace ids are not links: this tracking store has no UI address. To get links, start "
            f"'mlflow ui --backend-store-uri {safe_uri(tracking_uri)}' and rerun "
            "'trace2eval report <session> --ui-url http://127.0.0.1:5000'."
        )
    generation = _dict(publish.get("generation_run"))
    registered = _dict(publish.get("dataset"))
    return ReportContext(
        session_id=session.id,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        meta={
            "experiment_id": experiment_id,
            "tracking_uri": safe_uri(tracking_uri),
            "engine": plan.engine,
            "created_at": plan.created_at,
            "session_dir": str(session.dir),
        },
        status=status,
        status_detail=detail,
        links={
            "experiment": links.experiment(),
            "validation_run": links.run(_dict(validation).get("run_id")),
            "generation_run": links.run(generation.get("run_id")),
        },
        agent=describe_agent(analysis),
        kpis=kpi_tiles(analysis, findings, coverage, scorers, validation, status, labels_section(analysis))
        if analysis.get("trace_summary")
        else [],
        traces=trace_section(analysis),
        findings=findings,
        error_patterns=[
            {**p, "evidence": [Evidence(str(t), links.trace(str(t))) for t in _list(p.get("evidence"))[:3]]}
            for p in _list(analysis.get("error_patterns"))[:10]
            if isinstance(p, dict)
        ],
        query_types=query_types,
        coverage=coverage,
        scorers=scorers,
        validation=validation_section(validation, links, read_state(session.state_dir / "fix_log.json")),
        gates=gates,
        changes=changes,
        tasks=task_section(plan),
        mlflow={
            "generation_run": generation,
            "generation_run_url": links.run(generation.get("run_id")),
            "dataset": registered,
        },
        labels=labels_section(analysis),
        candidate=candidate_section(session, links),
        notes=notes,
    )
