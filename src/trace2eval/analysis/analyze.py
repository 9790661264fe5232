"""Turn a stream of trace digests into `state/analysis.json`.

The analyzer keeps one compact row per trace (numbers, flags, a short request text), never the
traces themselves. Thresholds for every check come from the experiment's own distribution and
are written down with the reason they were chosen.
"""

from __future__ import annotations

import math
import random
import sys
from collections import Counter, defaultdict
from typing import Any

from trace2eval.analysis.agreement import meta_evaluate
from trace2eval.analysis.querytypes import cluster_requests
from trace2eval.analysis.stats import outlier_threshold, percentile, summary
from trace2eval.traces.checks import run_check

EVIDENCE_IDS = 25
EXAMPLES_PER_TYPE = 15
RANDOM_SAMPLE = 30

SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
# Sections that describe the whole population of traces (counts, distributions, evidence), as
# opposed to findings and query types, which are derived from the digests added.
POPULATION_SECTIONS = ("agent", "trace_summary", "error_patterns", "tool_usage", "span_types", "request_shapes")


class Analyzer:
    """Accumulates digests one at a time; `finish()` computes the analysis."""

    def __init__(self, seed: int = 0, label_name: str | None = None):
        self.rows: list[dict[str, Any]] = []
        self.seed = seed
        self.label_name = label_name

    def add(self, digest: dict[str, Any]) -> None:
        """Keep what the analysis needs (about 1 KB a trace): 100k traces fit in a few hundred MB."""
        row = dict(digest)
        row["tools"] = [
            {"name": sys.intern(t["name"]), "ok": t["ok"], "error": t["error"], "ms": t["ms"], "nested": t.get("nested", False)}
            for t in row.get("tools", [])[:40]
        ]
        row["request"] = row.get("request") or ""  # already bounded; checks classify on all of it
        row["answer"] = (row.get("answer") or "")[:300]
        row["user_turns"] = []  # only needed while the digest was built
        row["ungrounded_writes"] = row.get("ungrounded_writes", [])[:2]
        self.rows.append(row)

    def finish(self, sample_note: str | None = None, population: dict[str, Any] | None = None) -> dict[str, Any]:
        """The analysis of the added digests.

        `population`: sections computed over more traces than were added (the Spark engine's
        aggregates over every trace, when only a sample was added). They replace the sections of
        the same name: one of POPULATION_SECTIONS.
        """
        rows = self.rows
        if not rows:
            raise ValueError("no traces to analyze")
        types = cluster_requests([r["request"] for r in rows], seed=self.seed)
        for row, label in zip(rows, types.labels):
            row["query_type"] = types.names[label]

        findings = build_findings(rows, types)
        analysis = {
            "schema_version": 1,
            "agent": describe_agent(rows),
            "trace_summary": trace_summary(rows),
            "sample": sample_note or f"all {len(rows)} traces matching the query",
            "error_patterns": error_patterns(rows),
            "tool_usage": tool_usage(rows),
            "span_types": dict(Counter(t for r in rows for t in r.get("span_types", {}))),
            "request_shapes": request_shapes(rows),
            "query_types": query_type_table(rows, types, findings),
            "findings": findings,
            "recommended_scorers": recommended_scorers(findings),
            "dataset_strategy": {
                "strategy": "traces",
                "why": "production traces carry the agent's real outputs, so the suite evaluates them "
                "directly with no predict_fn; rerun the agent through predict_fn to evaluate a new version",
            },
            "samples": samples(rows, self.seed),
        }
        if self.label_name:
            analysis["meta_evaluation"] = meta_evaluate(rows, findings, self.label_name)
            analysis["recommended_scorers"] = recommended_scorers(findings)
        unknown = set(population or {}) - set(POPULATION_SECTIONS)
        if unknown:
            raise ValueError(f"not population sections: {sorted(unknown)}")
        analysis.update(population or {})
        analysis["case_index"] = case_index(rows, analysis)
        return analysis


# ---------------------------------------------------------------------------------------------
# Sections


def describe_agent(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tool_names = Counter(t["name"] for r in rows for t in r["tools"])
    nested = Counter(t["name"] for r in rows for t in r["tools"] if t.get("nested"))
    multi_turn = sum(r["n_user_turns"] > 1 for r in rows)
    uses_tools = sum(r["n_tool_calls"] > 0 for r in rows)
    retrieval = sum("RETRIEVER" in r.get("span_types", {}) for r in rows)
    if nested and sum(nested.values()) >= 0.5 * sum(tool_names.values()):
        kind = "multi-agent supervisor: routes requests to sub-agents exposed as tools"
    elif retrieval >= 0.5 * len(rows):
        kind = "retrieval-augmented agent"
    elif uses_tools >= 0.3 * len(rows) and multi_turn >= 0.3 * len(rows):
        kind = "tool-using conversational agent (multi-turn)"
    elif uses_tools >= 0.3 * len(rows):
        kind = "tool-using agent"
    else:
        kind = "LLM application without tools"
    root_names = Counter(r.get("root_name") or "?" for r in rows)
    return {
        "type": kind,
        "root_spans": dict(root_names.most_common(5)),
        "input_shapes": dict(Counter(r["request_shape"] for r in rows).most_common(5)),
        "tools": dict(tool_names.most_common(30)),
        "sub_agents": sorted(nested),
        "multi_turn_share": round(multi_turn / len(rows), 3),
        "io": "inputs " + ", ".join(k for k, _ in Counter(r["request_shape"] for r in rows).most_common(3))
        + "; outputs carry a final text answer" if any(r["has_answer"] for r in rows) else "; outputs are often empty",
    }


def trace_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = Counter(r["status"] for r in rows)
    tokens = [r["tokens_in"] + r["tokens_out"] for r in rows if r["tokens_in"] + r["tokens_out"] > 0]
    times = [r["timestamp_ms"] for r in rows if r["timestamp_ms"]]
    return {
        "total_analyzed": len(rows),
        "by_status": dict(statuses),
        "error_count": statuses.get("ERROR", 0),
        "success_count": statuses.get("OK", 0),
        "latency_ms": summary([r["duration_ms"] for r in rows]),
        "tokens_per_trace": summary(tokens) if tokens else {"count": 0},
        "total_tokens": sum(tokens),
        "tool_calls_per_trace": summary([r["n_tool_calls"] for r in rows]),
        "user_turns_per_trace": summary([r["n_user_turns"] for r in rows]),
        "without_answer": sum(not r["has_answer"] for r in rows),
        "first_timestamp_ms": min(times) if times else None,
        "last_timestamp_ms": max(times) if times else None,
    }


def error_patterns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures grouped by where they happened and the normalized message."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in rows:
        for exc_type, message in r.get("exceptions", []):
            groups[("exception", exc_type, message)].append(r["trace_id"])
        for t in r["tools"]:
            if not t["ok"]:
                groups[("tool", t["name"], t.get("error") or "error")].append(r["trace_id"])
        if r["status"] == "ERROR" and not r.get("exceptions"):
            groups[("trace", "ERROR", "trace ended with status ERROR (no exception recorded)")].append(r["trace_id"])
    patterns = []
    for (where, name, message), ids in sorted(groups.items(), key=lambda kv: -len(set(kv[1]))):
        unique = list(dict.fromkeys(ids))
        patterns.append({
            "where": where, "name": name, "message": message, "count": len(ids),
            "traces": len(unique), "evidence": unique[:EVIDENCE_IDS],
        })
    return patterns[:30]


def tool_usage(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    traces: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for t in r["tools"]:
            calls[t["name"]] += 1
            failures[t["name"]] += not t["ok"]
            durations[t["name"]].append(t["ms"])
            if not traces[t["name"]] or traces[t["name"]][-1] != r["trace_id"]:
                traces[t["name"]].append(r["trace_id"])
    return [
        {
            "tool": name, "calls": n, "traces": len(traces[name]), "failures": failures[name],
            "failure_rate": round(failures[name] / n, 3), "p50_ms": round(percentile(durations[name], 50), 1),
            "p95_ms": round(percentile(durations[name], 95), 1), "evidence": traces[name][:5],
        }
        for name, n in calls.most_common(40)
    ]


def request_shapes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_shape: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_shape[r["request_shape"]].append(r["trace_id"])
    return [{"shape": s, "count": len(ids), "evidence": ids[:5]} for s, ids in sorted(by_shape.items(), key=lambda kv: -len(kv[1]))]


def query_type_table(rows, types, findings) -> list[dict[str, Any]]:
    flagged: dict[str, Counter[str]] = defaultdict(Counter)
    ids_by_finding = {f["id"]: set(f["all_evidence"]) for f in findings}
    table = []
    for idx, name in enumerate(types.names):
        members = [r for r in rows if r["query_type"] == name]
        if not members:
            continue
        member_ids = {r["trace_id"] for r in members}
        for fid, ids in ids_by_finding.items():
            hits = len(member_ids & ids)
            if hits:
                flagged[name][fid] = hits
        table.append({
            "name": name,
            "terms": types.terms[idx],
            "count": len(members),
            "error_rate": round(sum(r["status"] == "ERROR" for r in members) / len(members), 3),
            "latency_ms": summary([r["duration_ms"] for r in members]),
            "tool_calls_p50": percentile([r["n_tool_calls"] for r in members], 50),
            "findings": dict(flagged[name].most_common()),
            "examples": [r["request"][:160] for r in members[:3]],
            "evidence": [r["trace_id"] for r in members[:EXAMPLES_PER_TYPE]],
        })
    return sorted(table, key=lambda t: -t["count"])


# ---------------------------------------------------------------------------------------------
# Findings: each one is a check with data-derived parameters that some traces fail


def _per_type_limits(rows, types, value, q: float, floor_factor: float, min_count: int = 20) -> dict[str, Any]:
    """Limits per request type (types with enough traces), plus what a scorer needs to classify."""
    by_type = {}
    for name in types.names:
        values = [value(r) for r in rows if r["query_type"] == name]
        if len(values) >= min_count:
            by_type[name] = round(outlier_threshold(values, q, floor_factor), 1)
    if len(by_type) < 2:
        return {}
    return {"by_type": by_type, "types": [{"name": n, "terms": t} for n, t in zip(types.names, types.terms) if n in by_type]}


def _candidate_checks(rows: list[dict[str, Any]], types) -> list[dict[str, Any]]:
    n = len(rows)
    cands: list[dict[str, Any]] = []

    def add(fid, kind, title, severity, params, why, description):
        cands.append({"id": fid, "check": kind, "title": title, "severity": severity,
                      "params": params, "threshold_rationale": why, "description": description})

    # -- execution failures ---------------------------------------------------------------
    add("error_traces", "trace_ok", "Traces that end in ERROR", "high", {},
        "the trace ends with status ERROR", "The agent run itself failed (exception or error status).")
    with_failures = [r for r in rows if r["n_tool_errors"]]
    recovered = sum(r["n_unrecovered_tool_errors"] == 0 for r in with_failures)
    if with_failures and recovered / len(with_failures) >= 0.5:
        add("tool_failures", "tool_errors", "Tool failures the agent did not recover from", "high",
            {"max": 0, "unrecovered_only": True},
            f"a tool/retriever call fails and no tool call succeeds after it (the agent recovered in {recovered} of "
            f"{len(with_failures)} traces with failures, so a failure it recovers from passes)",
            "Tool or retriever calls failed and the agent did not get back on track.")
    else:
        add("tool_failures", "tool_errors", "Failed tool calls", "high", {"max": 0},
            "any tool/retriever call fails (error status, exception, or an error-looking result)"
            + (f"; the agent recovered in only {recovered} of {len(with_failures)} traces with failures" if with_failures else ""),
            "Tool or retriever calls failed; the answer may rest on missing data.")
    add("llm_failures", "llm_errors", "Failed LLM calls", "high", {},
        "an LLM call ends with error status", "Model calls failed inside the agent.")
    add("missing_answer", "has_answer", "Empty or cut-off answers", "high", {"min_chars": 1},
        "the final answer is empty or ends mid-sentence", "The user got no usable answer.")

    # -- behaviour relative to this experiment's own distribution ---------------------------
    with_tools = [r for r in rows if r["n_tool_calls"]]
    if len(with_tools) >= 0.8 * n and n >= 10:
        # Request types that are mostly answered without tools (greetings, "what can you do") are exempt.
        exempt = [name for name in types.names
                  if (members := [r for r in rows if r["query_type"] == name])
                  and sum(r["n_tool_calls"] > 0 for r in members) < 0.5 * len(members)]
        params = {"min": 1}
        if exempt:
            params.update({"exempt_types": exempt,
                           "types": [{"name": nm, "terms": t} for nm, t in zip(types.names, types.terms)]})
        add("answered_without_tools", "uses_tools", "Answers given without consulting any tool", "medium", params,
            f"the agent makes no tool call at all, while {len(with_tools)} of {n} traces ({len(with_tools) / n:.0%}) use tools"
            + (f"; request types mostly answered without tools are exempt ({', '.join(exempt)})" if exempt else ""),
            "The agent answered from its own knowledge where it nearly always looks things up first.")
    if with_tools:
        identical = [r["max_identical_calls"] for r in with_tools]
        limit = max(1, math.ceil(percentile(identical, 95)) if percentile(identical, 50) > 1 else 1)
        streaks = [r["max_same_tool_streak"] for r in with_tools]
        streak_limit = max(3, math.ceil(outlier_threshold(streaks, 95, 2.0)))
        add("repeated_calls", "no_repeated_calls", "Loops: the same tool call repeated", "medium",
            {"max": limit, "max_streak": streak_limit},
            f"the same tool is called with the same arguments more than {limit}×, or one tool more than "
            f"{streak_limit}× in a row ({streak_limit}: the p95 of same-tool streaks, at least 2× the median and 3)",
            "The agent repeated itself: a retry loop or a lost thread.")
        counts = [r["n_tool_calls"] for r in rows]
        limit = max(2, math.ceil(outlier_threshold(counts, 90, 1.5)))
        add("long_tool_chains", "tool_budget", "Unusually long tool chains", "medium", {"max": limit},
            f"it makes more than {limit} tool calls (the p90 of {n} traces (at least 1.5× the median))",
            "Far more tool calls than this agent usually needs: it is searching, retrying or lost.")
    turns = [r["n_user_turns"] for r in rows]
    if percentile(turns, 50) >= 2:
        limit = max(3, math.ceil(outlier_threshold(turns, 90, 1.5)))
        add("long_conversations", "conversation_length", "Unusually long conversations", "medium", {"max": limit},
            f"it takes more than {limit} user turns (the p90 of {n} traces (at least 1.5× the median))",
            "Conversations that drag on usually mean the agent is not resolving the request.")
    writers = [r for r in rows if r["n_write_calls"]]
    if writers:
        add("unconfirmed_writes", "confirmed_writes", "State changes without the user's go-ahead", "high",
            {"max": 0}, "a state-changing tool call (named with a write verb) comes without an affirmation in "
            "the user's most recent turn", "Actions that change state should follow an explicit confirmation.")
        add("ungrounded_writes", "grounded_writes", "State changes with values nobody provided", "high", {"max": 0},
            "a state-changing call uses argument values (ids, amounts, dates, names) found in neither the "
            "user's messages nor earlier tool results", "The agent acted on values it invented or misread: wrong arguments.")
        repeats = [r["max_write_repeats"] for r in writers]
        limit = max(2, math.ceil(percentile(repeats, 95)))
        add("repeated_writes", "repeated_writes", "The same state change repeated", "medium", {"max": limit},
            f"one state-changing tool is called more than {limit}× in a conversation (the p95 of conversations with "
            "state changes, at least 2)", "Repeating an action usually means earlier attempts were wrong.")
    nested = Counter(t["name"] for r in rows for t in r["tools"] if t.get("nested"))
    if nested:
        per_trace = [len({t["name"] for t in r["tools"] if t["name"] in nested}) for r in rows]
        using = [x for x in per_trace if x]
        common = Counter(using).most_common(1)[0][0] if using else 1
        if using and sum(x <= common for x in using) / len(using) >= 0.6:
            add("extra_routing", "routing_path", "Requests routed to more sub-agents than needed", "medium",
                {"max_distinct": common, "tools": sorted(nested)},
                f"a request reaches more than {common} of the sub-agents ({', '.join(sorted(nested))}); "
                f"{sum(x <= common for x in using)} of {len(using)} routed requests use at most {common}",
                "Calling several sub-agents where most requests need one wastes time and tokens.")

    # -- cost and latency, per request type where there is enough data ------------------------
    durations = [r["duration_ms"] for r in rows]
    if any(durations):
        limit = round(outlier_threshold(durations, 95, 2.0), 1)
        per_type = _per_type_limits(rows, types, lambda r: r["duration_ms"], 95, 2.0)
        add("slow_traces", "latency_budget", "Latency outliers", "low", {"max_ms": limit, **per_type},
            f"it is slower than {limit / 1000:.1f} s, the p95 of {n} traces (at least 2× the median)"
            + (f"; per request type where a type has 20+ traces" if per_type else ""),
            "Requests much slower than usual for their kind.")
    tokens = [r["tokens_in"] + r["tokens_out"] for r in rows if r["tokens_in"] + r["tokens_out"]]
    if len(tokens) >= max(5, n // 4):
        limit = math.ceil(outlier_threshold(tokens, 95, 2.0))
        per_type = _per_type_limits([r for r in rows if r["tokens_in"] + r["tokens_out"]], types,
                                    lambda r: r["tokens_in"] + r["tokens_out"], 95, 2.0)
        add("token_outliers", "token_budget", "Token usage outliers", "low", {"max": limit, **per_type},
            f"it uses more than {limit} tokens, the p95 of {len(tokens)} traces with usage (at least 2× the median)"
            + ("; per request type where a type has 20+ traces" if per_type else ""),
            "Requests that cost far more than usual for their kind.")
    return cands


# Findings worth reporting and judging, but whose code check cannot tell right from wrong on its
# own: a hand-off is correct when policy requires it. They get dataset rows and an LLM judge, not a
# pass/fail code scorer.
MONITORS = [
    {"id": "give_up_or_handoff", "check": "no_give_up", "title": "Give-ups and hand-offs", "severity": "medium",
     "params": {}, "threshold_rationale": "the agent calls a hand-off/escalation tool, or its final answer "
     "apologises, declines or says it cannot help", "description": "The agent did not resolve the request itself; whether that was right "
     "depends on policy, which an LLM judge checks."},
]


def build_findings(rows: list[dict[str, Any]], types) -> list[dict[str, Any]]:
    findings = []
    candidates = _candidate_checks(rows, types) + [{**m, "scorer": "judge"} for m in MONITORS]
    for cand in candidates:
        failing, passing = [], []
        rationale_counts: Counter[str] = Counter()
        for r in rows:
            ok, why = run_check(cand["check"], r, cand["params"])
            if ok:
                passing.append(r)
            else:
                failing.append(r)
                rationale_counts[why.split(";")[0][:120]] += 1
        if not failing:
            continue
        by_type = Counter(r["query_type"] for r in failing)
        findings.append({
            "scorer": "code",
            **cand,
            "prevalence": {"traces": len(failing), "rate": round(len(failing) / len(rows), 3)},
            "evidence": [r["trace_id"] for r in failing[:EVIDENCE_IDS]],
            "all_evidence": [r["trace_id"] for r in failing],
            "counter_examples": [r["trace_id"] for r in passing[:10]],
            "query_types": dict(by_type.most_common()),
            "examples": [why for why, _ in rationale_counts.most_common(3)],
        })
    findings.sort(key=lambda f: (SEVERITY_RANK[f["severity"]], -f["prevalence"]["traces"]))
    return findings


def recommended_scorers(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    recs = [{
        "name": f["id"] if f["scorer"] == "code" else f"{f['id']}_judge", "type": f["scorer"], "check": f["check"],
        "finding": f["id"], "kept": f.get("kept", True),
        "rationale": f"{f['title']}: {f['prevalence']['traces']} trace(s) ({f['prevalence']['rate']:.0%}); {f['threshold_rationale']}",
    } for f in findings]
    recs += [
        {"name": "safety", "type": "builtin_judge", "rationale": "baseline: no harmful content"},
        {"name": "relevance_to_query", "type": "builtin_judge", "rationale": "answers must address the request"},
    ]
    return recs


def samples(rows: list[dict[str, Any]], seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    ids = [r["trace_id"] for r in rows]
    slowest = sorted(rows, key=lambda r: -r["duration_ms"])[:5]
    ok = [r for r in rows if r["status"] != "ERROR" and r["has_answer"]]
    typical = percentile([r["duration_ms"] for r in ok], 50)
    baseline = sorted(ok, key=lambda r: abs(r["duration_ms"] - typical))[:3]
    return {
        "random": rng.sample(ids, min(RANDOM_SAMPLE, len(ids))),
        "slowest": [r["trace_id"] for r in slowest],
        "baseline": [r["trace_id"] for r in baseline],
        "errors": [r["trace_id"] for r in rows if r["status"] == "ERROR"][:10],
    }


def case_index(rows: list[dict[str, Any]], analysis: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Short facts about every trace the analysis cites, for the dataset and the report."""
    cited: set[str] = set()
    for f in analysis["findings"]:
        cited.update(f["evidence"])
        cited.update(f["counter_examples"])
    for q in analysis["query_types"]:
        cited.update(q["evidence"])
    for ids in analysis["samples"].values():
        cited.update(ids)
    for shape in analysis["request_shapes"]:
        cited.update(shape["evidence"])
    return {
        r["trace_id"]: {
            "query_type": r["query_type"], "status": r["status"], "duration_ms": r["duration_ms"],
            "request": r["request"][:160],
        }
        for r in rows if r["trace_id"] in cited
    }
