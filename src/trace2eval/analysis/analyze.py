"""Turn a stream of trace digests into `state/analysis.json`.

The analyzer keeps one compact row per trace (numbers, flags, a short request text), never the
traces themselves. Thresholds for every check come from the experiment's own distribution and
are written down with the reason they were chosen.
"""

from __future__ import annotations

import random
import sys
from collections import Counter, defaultdict
from typing import Any

from trace2eval.analysis.agreement import meta_evaluate, signals_candidate
from trace2eval.analysis.findings import REGISTRY, candidates
from trace2eval.state.versions import ANALYSIS_VERSION
from trace2eval.analysis.querytypes import cluster_requests
from trace2eval.analysis.sections import (
    EVIDENCE_IDS,
    TRACE_NO_EXCEPTION,
    AgentCounts,
    describe_agent,
    describe_coverage,
    describe_error_pattern,
    describe_tool,
    describe_trace_summary,
)
from trace2eval.analysis.stats import content_order, conversation_text, percentile, summary
from trace2eval.traces.checks import run_check
from trace2eval.traces.digest import Conversations
from trace2eval.traces.features import merge_turns

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
        self.conversations = Conversations()
        self.seed = seed
        self.label_name = label_name
        self.instructions = Instructions()

    def add(self, digest: dict[str, Any]) -> None:
        """Keep what the analysis needs (about 1 KB a trace): 100k traces fit in a few hundred MB."""
        row = dict(digest)
        self.instructions.add(str(row.pop("instructions", "") or ""))
        row["tools"] = [
            {
                "name": sys.intern(t["name"]),
                "key": t.get("key", ""),  # identical calls across a conversation's turns (merge_turns)
                "ok": t["ok"],
                "error": t["error"],
                "ms": t["ms"],
                "nested": t.get("nested", False),
            }
            for t in row.get("tools", [])[:40]
        ]
        row["request"] = row.get("request") or ""  # already bounded; checks classify on all of it
        row["answer"] = (row.get("answer") or "")[:300]
        row["user_turns"] = []  # only needed while the digest was built
        row["ungrounded_writes"] = row.get("ungrounded_writes", [])[:2]
        self.rows.append(row)
        self.conversations.add(row)

    def finish(self, sample_note: str | None = None, population: dict[str, Any] | None = None) -> dict[str, Any]:
        """The analysis of the added digests.

        `population`: sections computed over more traces than were added (the Spark engine's
        aggregates over every trace, when only a sample was added). They replace the sections of
        the same name: one of POPULATION_SECTIONS.
        """
        rows = self.rows
        if not rows:
            raise ValueError("no traces to analyze")
        types = request_types(rows, self.conversations, self.seed)

        coverage = trace_coverage(rows)
        # Findings are measured on the unit that is judged: a conversation split into one trace per
        # turn is checked as a whole (thresholds, evidence and labels per conversation).
        units = conversation_units(rows, self.conversations)
        findings, guards = build_findings(units, types, set(coverage["missing"]))
        analysis = {
            "schema_version": ANALYSIS_VERSION,
            "agent": describe_agent(agent_counts(rows)),
            "trace_summary": trace_summary(rows),
            "sample": sample_note or f"all {len(rows)} traces matching the query",
            "error_patterns": error_patterns(rows),
            "tool_usage": tool_usage(rows),
            "span_types": dict(Counter(t for r in rows for t in r.get("span_types", {}))),
            "request_shapes": request_shapes(rows),
            "coverage": coverage,
            "query_types": query_type_table(rows, types, findings),
            "conversations": {
                **conversations_section(self.conversations),
                "unit": "trace" if units is rows else "conversation",
            },
            "findings": findings,
            "guards": guards,
            "dataset_strategy": {
                "strategy": "traces",
                "why": "production traces carry the agent's real outputs, so the suite evaluates them "
                "directly with no predict_fn; rerun the agent through predict_fn to evaluate a new version",
            },
            "samples": samples(rows, self.seed),
        }
        instructions = self.instructions.section(len(rows))
        if instructions:
            analysis["instructions"] = instructions
        if self.label_name:
            analysis["meta_evaluation"], records = meta_evaluate(units, findings, self.label_name)
            learned = signals_candidate(analysis["meta_evaluation"])
            measured = measure_finding(learned, units) if learned else None
            analysis["findings"] = findings = [
                {**f, **records.get(f["id"], {})} for f in findings + ([measured] if measured else [])
            ]
        unknown = set(population or {}) - set(POPULATION_SECTIONS)
        if unknown:
            raise ValueError(f"not population sections: {sorted(unknown)}")
        analysis.update(population or {})
        analysis["case_index"] = case_index(rows, analysis)
        if self.conversations.has_sessions:
            conversation_counts(analysis, self.conversations)
        return analysis


class Instructions:
    """The agent's instructions (system prompts) as the traces carry them: every trace repeats them, so
    each distinct text is kept once and counted; the rows keep none."""

    MAX_DISTINCT = 20  # prompts that interpolate a date or a user's name differ per trace: the rest is counted

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()  # by text, in the order first seen
        self.carried = 0  # traces that carry instructions
        self.uncounted = 0  # carried a text beyond MAX_DISTINCT

    def add(self, text: str) -> None:
        if not text:
            return
        self.carried += 1
        if text not in self.counts and len(self.counts) >= self.MAX_DISTINCT:
            self.uncounted += 1
            return
        self.counts[text] += 1

    def section(self, traces: int) -> dict[str, Any] | None:
        """The most common text (the first seen among equals), with how many traces carry it."""
        if not self.counts:
            return None
        text, count = self.counts.most_common(1)[0]
        return {
            "text": text,
            "traces": count,
            "traces_with_instructions": self.carried,
            "of": traces,
            "distinct": len(self.counts),
            "traces_beyond_distinct": self.uncounted,  # their text came after MAX_DISTINCT others: not kept
            "note": "the first system (or developer) prompt of each trace's model calls; the text most "
            "traces carry, as the digests scrubbed it",
        }


# ---------------------------------------------------------------------------------------------
# Conversations: traces grouped by their `mlflow.trace.session` metadata


def request_types(rows: list[dict[str, Any]], conversations: Conversations, seed: int):
    """Query types, one per conversation, from its first user request; every turn gets its
    conversation's type (a "Yes, go ahead" turn is not a request type of its own). Without session
    metadata every trace is a conversation: the requests are clustered as they come."""
    if not conversations.has_sessions:
        types = cluster_requests([r["request"] for r in rows], seed=seed)
        for row, label in zip(rows, types.labels):
            row["query_type"] = types.names[label]
        return types
    groups = list(conversations.by_key.values())
    types = cluster_requests([c.first_request for c in groups], seed=seed)
    type_of = {c.key: types.names[label] for c, label in zip(groups, types.labels)}
    openers = {c.trace_ids[0] for c in groups}
    for row in rows:
        row["query_type"] = type_of[conversations.by_trace[row["trace_id"]]]
        row["opens"] = row["trace_id"] in openers
    return types


def conversation_units(rows: list[dict[str, Any]], conversations: Conversations) -> list[dict[str, Any]]:
    """The rows findings are measured on: one per conversation when some conversation spans several
    traces (its turns merged as `merge_turns` reads them, under its last turn's trace id, the one its
    answer ends in), otherwise the traces themselves."""
    groups = [c.trace_ids for c in conversations.by_key.values()]
    if all(len(ids) == 1 for ids in groups):
        return rows
    by_id = {r["trace_id"]: r for r in rows}
    units = []
    for ids in groups:
        turns = [by_id[t] for t in ids]
        unit = merge_turns(turns)
        labels = [t.get("label") for t in turns if t.get("label") is not None]
        if "label" in unit:  # a conversation is bad when any of its turns was labelled bad
            unit["label"] = (False not in labels) if labels else None
        units.append(unit)
    return units


def conversations_section(conversations: Conversations) -> dict[str, Any]:
    groups = list(conversations.by_key.values())
    sessions = [c for c in groups if c.session]
    return {
        "count": len(groups),
        "has_session_metadata": bool(sessions),
        "with_session": len(sessions),
        "turns_per_conversation": summary([len(c.turns) for c in groups]),
        "multi_turn": sum(len(c.turns) > 1 for c in groups),
        "note": (
            "traces grouped into conversations by their mlflow.trace.session metadata, turns in time order; "
            "a trace without it is a conversation of its own"
            if sessions
            else "no trace carries mlflow.trace.session metadata: every trace is a conversation of its own"
        ),
    }


def conversation_counts(analysis: dict[str, Any], conversations: Conversations) -> None:
    """Per-conversation counts beside the per-trace ones, and the turns of every cited conversation
    (the dataset evaluates a conversation's turns together)."""
    for f in analysis["findings"]:
        f["conversations"] = len({conversations.by_trace[t] for t in f["all_evidence"] if t in conversations.by_trace})
    cited: dict[str, list[str]] = {}
    for trace_id, facts in analysis["case_index"].items():
        conversation = conversations.of(trace_id)
        if conversation is not None and conversation.session:
            facts["session"] = conversation.session
            cited[conversation.session] = conversation.trace_ids
    for pattern in analysis["error_patterns"]:  # the dataset takes an example of each, too
        for trace_id in pattern["evidence"][:1]:
            conversation = conversations.of(trace_id)
            if conversation is not None and conversation.session:
                cited[conversation.session] = conversation.trace_ids
    analysis["conversations"]["turns"] = cited


# ---------------------------------------------------------------------------------------------
# Sections


def agent_counts(rows: list[dict[str, Any]]) -> AgentCounts:
    tool_names = Counter(t["name"] for r in rows for t in r["tools"])
    nested = Counter(t["name"] for r in rows for t in r["tools"] if t.get("nested"))
    return AgentCounts(
        n=len(rows),
        tools=tool_names.most_common(),
        sub_agents=sorted(nested),
        nested_calls=sum(nested.values()),
        multi_turn=sum(r["n_user_turns"] > 1 for r in rows),
        uses_tools=sum(r["n_tool_calls"] > 0 for r in rows),
        retrieval=sum("RETRIEVER" in r.get("span_types", {}) for r in rows),
        roots=Counter(r.get("root_name") or "?" for r in rows).most_common(),
        shapes=Counter(r["request_shape"] for r in rows).most_common(),
        any_answer=any(r["has_answer"] for r in rows),
    )


def trace_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [r["tokens_in"] + r["tokens_out"] for r in rows if r["tokens_in"] + r["tokens_out"] > 0]
    times = [r["timestamp_ms"] for r in rows if r["timestamp_ms"]]
    return describe_trace_summary(
        len(rows),
        dict(Counter(r["status"] for r in rows)),
        summary([r["duration_ms"] for r in rows]),
        summary(tokens) if tokens else {"count": 0},
        sum(tokens),
        summary([r["n_tool_calls"] for r in rows]),
        summary([r["n_user_turns"] for r in rows]),
        sum(not r["has_answer"] for r in rows),
        min(times) if times else None,
        max(times) if times else None,
    )


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
            groups[("trace", "ERROR", TRACE_NO_EXCEPTION)].append(r["trace_id"])
    patterns = []
    for (where, name, message), ids in sorted(groups.items(), key=lambda kv: -len(set(kv[1]))):
        unique = list(dict.fromkeys(ids))
        patterns.append(describe_error_pattern(where, name, message, len(ids), len(unique), unique))
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
        describe_tool(
            name,
            n,
            len(traces[name]),
            failures[name],
            percentile(durations[name], 50),
            percentile(durations[name], 95),
            traces[name],
        )
        for name, n in calls.most_common(40)
    ]


def request_shapes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_shape: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_shape[r["request_shape"]].append(r["trace_id"])
    return [
        {"shape": s, "count": len(ids), "evidence": ids[:5]}
        for s, ids in sorted(by_shape.items(), key=lambda kv: -len(kv[1]))
    ]


def query_type_table(rows, types, findings) -> list[dict[str, Any]]:
    flagged: dict[str, Counter[str]] = defaultdict(Counter)
    ids_by_finding = {f["id"]: set(f["all_evidence"]) for f in findings}
    table = []
    for idx, name in enumerate(types.names):
        # A conversation's opening request first: its follow-ups ("Yes, go ahead") say less.
        members = sorted((r for r in rows if r["query_type"] == name), key=lambda r: not r.get("opens", True))
        if not members:
            continue
        member_ids = {r["trace_id"] for r in members}
        for fid, ids in ids_by_finding.items():
            hits = len(member_ids & ids)
            if hits:
                flagged[name][fid] = hits
        table.append(
            {
                "name": name,
                "terms": types.terms[idx],
                "count": len(members),
                "error_rate": round(sum(r["status"] == "ERROR" for r in members) / len(members), 3),
                "latency_ms": summary([r["duration_ms"] for r in members]),
                "tool_calls_p50": percentile([r["n_tool_calls"] for r in members], 50),
                "findings": dict(flagged[name].most_common()),
                "examples": [r["request"][:160] for r in members[:3]],
                "evidence": [r["trace_id"] for r in members[:EXAMPLES_PER_TYPE]],
            }
        )
        if "opens" in members[0]:  # traces grouped into conversations: how many this type holds
            table[-1]["conversations"] = sum(r["opens"] for r in members)
    return sorted(table, key=lambda t: -t["count"])


# ---------------------------------------------------------------------------------------------
# Findings: each one is a check with data-derived parameters that some traces fail


def trace_coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether any trace carries tool calls, token usage and answers: a finding built on a
    feature no trace carries would read the layout, not the agent."""
    carries = {
        "tools": any(r["n_tool_calls"] > 0 for r in rows),
        "tokens": any(r["tokens_in"] + r["tokens_out"] > 0 for r in rows),
        "answers": any(r["has_answer"] for r in rows),
    }
    skipped = [fid for fid, spec in REGISTRY.items() if any(not carries.get(n, True) for n in spec.needs)]
    return describe_coverage(carries, skipped)


def build_findings(
    rows: list[dict[str, Any]], types, missing: set[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Findings that some traces fail, and guards; none that needs what the traces do not carry (`missing`).

    A guard is a failure check that applies to these traces and that none of them fails yet (no tool
    call failed, no claim went unbacked). Its threshold is absolute, not a share of this experiment, so
    it means the same on traces it has not seen: the suite keeps it to catch the failure when it first
    appears (a new version of the agent, new traffic, production monitoring). Outliers and reported
    evidence are no guards: without a failing trace they are not failures."""
    findings, guards = [], []
    for cand in candidates(rows, types):
        spec = REGISTRY[cand["id"]]
        if missing and set(spec.needs) & missing:
            continue
        measured = measure_finding(cand, rows)
        if measured:
            findings.append(measured)
        elif cand["scorer"] == "code" and not (spec.outlier or spec.reported or cand["params"].get("report_only")):
            guards.append({**cand, "checked": len(rows)})
    findings.sort(key=lambda f: (SEVERITY_RANK[f["severity"]], -f["prevalence"]["traces"]))
    return findings, guards


def measure_finding(cand: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A candidate finding with its prevalence and evidence on `rows`, or None when no row fails it."""
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
        return None
    by_type = Counter(r.get("query_type") for r in failing)
    return {
        **cand,
        "prevalence": {"traces": len(failing), "rate": round(len(failing) / len(rows), 3)},
        "evidence": [r["trace_id"] for r in failing[:EVIDENCE_IDS]],
        "all_evidence": [r["trace_id"] for r in failing],
        "counter_examples": [r["trace_id"] for r in passing[:10]],
        "query_types": dict(by_type.most_common()),
        "examples": [why for why, _ in rationale_counts.most_common(3)],
    }


def samples(rows: list[dict[str, Any]], seed: int) -> dict[str, list[str]]:
    """Trace ids to show an LLM: a seeded random few (the same conversations on every load of the
    same traces, whatever their ids and store order), the slowest, typical ones, errors."""
    rng = random.Random(seed)
    ids = [r["trace_id"] for r in content_order(rows, conversation_text)]
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
            "query_type": r["query_type"],
            "status": r["status"],
            "duration_ms": r["duration_ms"],
            "request": r["request"][:160],
        }
        for r in rows
        if r["trace_id"] in cited
    }
