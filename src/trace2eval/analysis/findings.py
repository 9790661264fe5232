"""Every finding trace2eval knows, defined once.

A finding is one entry here: its id (which is also the name of its check in `traces/checks.py`
and of the code scorer generated for it), title, severity, what it means, the guidelines an LLM
judge uses for what code cannot read, and how its threshold is derived from the experiment's own
traces. The analyzer, the scorer generator and the README's table all read this registry; adding a
finding means one `@finding` entry here and one `@register_check` with the same name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NamedTuple

from trace2eval.analysis.stats import outlier_threshold, percentile
from trace2eval.traces.features import REPEAT_MIN_WORDS, REPEAT_OVERLAP

Severity = Literal["high", "medium", "low"]
Rows = list[dict[str, Any]]


class Derived(NamedTuple):
    """What the data says about one finding: its check's parameters and why they were chosen.

    `title`/`description` replace the registry's when the data changes what the finding means
    (for example when the agent usually recovers from tool failures)."""

    params: dict[str, Any]
    rationale: str
    title: str | None = None
    description: str | None = None
    severity: Severity | None = None  # replaces the registry's (an outlier that is only reported is "low")


@dataclass(frozen=True)
class FindingDef:
    id: str
    title: str
    severity: Severity
    summary: str  # one line for the README's table
    description: str
    derive: Callable[[Rows, Any], Derived | None]
    scorer: Literal["code", "judge"] = "code"  # "judge": reported and judged, no pass/fail code scorer
    judge_guidelines: tuple[str, ...] = field(default_factory=tuple)
    # What the traces must carry for the finding to mean anything: "tools", "tokens", "answers"
    # (see analysis/sections.py, describe_coverage). Without it the finding is not made.
    needs: tuple[str, ...] = ()
    outlier: bool = False  # the threshold is a percentile of this experiment: see `_outlier`
    habit: bool = False  # a heuristic reading of intent: see `_habit`
    reported: bool = False  # evidence too weak to fail a trace on alone: see `_reported`

    @property
    def check(self) -> str:
        return self.id


REGISTRY: dict[str, FindingDef] = {}


def finding(
    id: str,
    *,
    title: str,
    severity: Severity,
    summary: str,
    description: str,
    scorer: Literal["code", "judge"] = "code",
    judge: tuple[str, ...] = (),
    needs: tuple[str, ...] = (),
    outlier: bool = False,
    habit: bool = False,
    reported: bool = False,
):
    """Register the decorated `derive(rows, types) -> Derived | None` as finding `id`."""

    def register(derive: Callable[[Rows, Any], Derived | None]) -> Callable[[Rows, Any], Derived | None]:
        if id in REGISTRY:
            raise ValueError(f"finding {id!r} is defined twice")
        REGISTRY[id] = FindingDef(
            id,
            title,
            severity,
            summary,
            description,
            derive,
            scorer,
            tuple(judge),
            tuple(needs),
            outlier,
            habit,
            reported,
        )
        return derive

    return register


def candidates(rows: Rows, types: Any) -> list[dict[str, Any]]:
    """Every finding that applies to these traces, with its parameters (prevalence comes later)."""
    found = []
    for spec in REGISTRY.values():
        derived = spec.derive(rows, types)
        if derived is None:
            continue
        if spec.outlier:
            derived = _outlier(rows, spec.check, derived)
        if spec.habit:
            derived = _habit(rows, spec.check, derived)
        if spec.reported:
            derived = _reported(derived)
        found.append(
            {
                "id": spec.id,
                "check": spec.check,
                "title": derived.title or spec.title,
                "severity": derived.severity or spec.severity,
                "params": derived.params,
                "threshold_rationale": derived.rationale,
                "description": derived.description or spec.description,
                "scorer": spec.scorer,
            }
        )
    return found


def readme_table() -> str:
    """The README's table of findings, generated so it cannot drift (a test compares)."""
    lines = ["| finding | fails when | scorer |", "|---|---|---|"]
    for spec in REGISTRY.values():
        kind = (
            "code + LLM judge"
            if spec.scorer == "code" and spec.judge_guidelines
            else ("code" if spec.scorer == "code" else "LLM judge only")
        )
        if spec.outlier:
            kind += " (outlier: reported, a failure only where outliers fail more often)"
        elif spec.habit:
            kind += " (reported, not a failure, where it holds for most traces)"
        elif spec.reported:
            kind += " (reported; a failure only where `--labels` tie it to failures)"
        lines.append(f"| `{spec.id}` | {spec.summary} | {kind} |")
    return "\n".join(lines)


def _per_type_limits(
    rows: Rows, types: Any, value, q: float, floor_factor: float, min_count: int = 20
) -> dict[str, Any]:
    """Limits per request type (types with enough traces), plus what a scorer needs to classify."""
    by_type = {}
    for name in types.names:
        values = [value(r) for r in rows if r["query_type"] == name]
        if len(values) >= min_count:
            by_type[name] = round(outlier_threshold(values, q, floor_factor), 1)
    if len(by_type) < 2:
        return {}
    return {
        "by_type": by_type,
        "types": [{"name": n, "terms": t} for n, t in zip(types.names, types.terms) if n in by_type],
    }


# -- outliers: reported, counted as failures only where this experiment shows they fail -----------


# What any conversation shows when it went wrong, read without labels: the run ended in ERROR, the
# user pushed back (corrected the agent, insisted, complained), the user's need was left open, or a
# tool failure nothing recovered from. Give-ups and hand-offs are not in it: a hand-off is often the
# right outcome (policy requires it), and on real agents it is as common in good conversations.
def distressed(row: dict[str, Any]) -> bool:
    return bool(
        row.get("status") == "ERROR"
        or row.get("n_user_pushback")
        or row.get("need_open")
        or row.get("n_unrecovered_tool_errors")
        or row.get("n_unbacked_claims")
    )


OUTLIER_LIFT = 1.5  # flagged traces must show distress 1.5x as often as the rest to count as failures
OUTLIER_MIN_DISTRESSED = 3  # and at least this many flagged traces must show it: fewer is chance


def _outlier(rows: Rows, check: str, derived: Derived) -> Derived:
    """An outlier threshold (a percentile of this experiment) flags the tail of a healthy agent too.

    It counts as a failure only when the experiment's own traces show that its outliers go wrong
    more often than the rest (`distressed`, at least OUTLIER_LIFT times as often and in at least
    OUTLIER_MIN_DISTRESSED flagged traces); otherwise the finding is reported at low severity and
    its scorer passes the trace with a rationale saying it is an outlier (`report_only`).
    """
    from trace2eval.traces.checks import run_check

    flagged = [r for r in rows if not run_check(check, r, derived.params)[0]]
    rest = [r for r in rows if r not in flagged] if flagged else rows
    hit = sum(map(distressed, flagged))
    flagged_rate = hit / len(flagged) if flagged else 0.0
    rest_rate = sum(map(distressed, rest)) / len(rest) if rest else 0.0
    seen = (
        f"{hit} of {len(flagged)} outliers ({flagged_rate:.0%}) end in an error, user push-back or an open need, "
        f"against {rest_rate:.0%} of the other traces"
    )
    if flagged and hit >= OUTLIER_MIN_DISTRESSED and flagged_rate >= OUTLIER_LIFT * rest_rate:
        return derived._replace(rationale=f"{derived.rationale}; counted as a failure: {seen}")
    return derived._replace(
        params={**derived.params, "report_only": True},
        rationale=f"{derived.rationale}; reported as an outlier, not a failure: {seen}",
        title=f"{derived.title or REGISTRY[check].title} (outliers, not failures)",
        severity="low",
    )


HABIT_SHARE = 0.3  # a heuristic failing more traces than this describes how the agent works


def _habit(rows: Rows, check: str, derived: Derived) -> Derived:
    """A heuristic check (a go-ahead read from the user's words, a value found in earlier text) that fails
    a large share of an experiment's traces describes the agent's way of working (an agent that acts
    on the user's first request by design, values it computes), not a failure in each of them: it is
    reported at low severity and passes (`report_only`). Failures are the exception in an agent anyone
    runs; a check failing more than HABIT_SHARE of the traces cannot be telling them apart."""
    from trace2eval.traces.checks import run_check

    if derived.params.get("report_only") or not rows:
        return derived
    n = sum(not run_check(check, r, derived.params)[0] for r in rows)
    if n <= HABIT_SHARE * len(rows):
        return derived
    return derived._replace(
        params={**derived.params, "report_only": True},
        rationale=f"{derived.rationale}; reported, not a failure: it holds for {n} of {len(rows)} traces "
        f"({n / len(rows):.0%}, more than {HABIT_SHARE:.0%}), so it is how this agent works",
        title=f"{derived.title or REGISTRY[check].title} (this agent's habit, not failures)",
        severity="low",
    )


def _reported(derived: Derived) -> Derived:
    """Evidence that also ends many good conversations (a user's last question the agent rightly could not
    answer, a request restated because the agent asked for it again) is reported at low severity and
    passes (`report_only`). With `--labels`, the labels decide whether it tells this agent's failures
    apart (analysis/labels.py): then it counts."""
    return derived._replace(
        params={**derived.params, "report_only": True},
        rationale=f"{derived.rationale}; reported, not a failure: it also ends good conversations, and with "
        "--labels the labels decide whether it counts for this agent",
        severity="low",
    )


# -- execution failures ---------------------------------------------------------------------------


@finding(
    "error_traces",
    title="Traces that end in ERROR",
    severity="high",
    summary="the trace ends in ERROR",
    description="The agent run itself failed (exception or error status).",
)
def _error_traces(rows, types):
    return Derived({}, "the trace ends with status ERROR")


@finding(
    "tool_failures",
    needs=("tools",),
    title="Failed tool calls",
    severity="high",
    summary="a tool call fails — or, when the agent usually recovers, a failure nothing succeeded after",
    description="Tool or retriever calls failed; the answer may rest on missing data.",
    judge=(
        "If a tool or data lookup failed, the response must not claim the action succeeded or invent "
        "the missing data; it says what could not be done and what the user can do next.",
    ),
)
def _tool_failures(rows, types):
    with_failures = [r for r in rows if r["n_tool_errors"]]
    recovered = sum(r["n_unrecovered_tool_errors"] == 0 for r in with_failures)
    if not with_failures:  # a guard: what a first failure means is unknown, so only one nothing recovered from fails
        return Derived(
            {"max": 0, "unrecovered_only": True},
            "a tool/retriever call fails and no tool call succeeds after it (no call failed in these traces: "
            "a failure the agent recovers from passes)",
            title="Tool failures the agent did not recover from",
            description="Tool or retriever calls failed and the agent did not get back on track.",
        )
    if recovered / len(with_failures) >= 0.5:
        return Derived(
            {"max": 0, "unrecovered_only": True},
            f"a tool/retriever call fails and no tool call succeeds after it (the agent recovered in {recovered} of "
            f"{len(with_failures)} traces with failures, so a failure it recovers from passes)",
            title="Tool failures the agent did not recover from",
            description="Tool or retriever calls failed and the agent did not get back on track.",
        )
    return Derived(
        {"max": 0},
        "any tool/retriever call fails (error status, exception, or an error-looking result)"
        + (
            f"; the agent recovered in only {recovered} of {len(with_failures)} traces with failures"
            if with_failures
            else ""
        ),
    )


@finding(
    "llm_failures",
    title="Failed LLM calls",
    severity="high",
    summary="an LLM call fails",
    description="Model calls failed inside the agent.",
)
def _llm_failures(rows, types):
    if not any(r.get("llm_calls") for r in rows):  # no model call in the traces: nothing to check
        return None
    return Derived({}, "an LLM call ends with error status")


@finding(
    "missing_answer",
    needs=("answers",),
    title="Empty or cut-off answers",
    severity="high",
    summary="the answer is empty or cut off",
    description="The user got no usable answer.",
    judge=("The response directly answers the user's request in complete sentences.",),
)
def _missing_answer(rows, types):
    return Derived({"min_chars": 1}, "the final answer is empty or ends mid-sentence")


# -- what the conversation itself says went wrong (any domain: conversational English) -------------


@finding(
    "user_pushback",
    title="The user pushes back",
    severity="high",
    summary="a later user turn corrects the agent, insists, or voices frustration",
    description="The user had to correct the agent, insist or complain: the agent was not meeting their need.",
    judge=(
        "The agent understands the user's request the first time; the user never has to correct it, repeat "
        "themselves or insist.",
    ),
)
def _user_pushback(rows, types):
    if not any(r["n_user_turns"] > 1 for r in rows):
        return None
    return Derived(
        {"max": 0},
        "any user turn after the first says the agent got it wrong, that they already said so, that they "
        "insist, or that they are frustrated (one is enough: a satisfied user does not say it)",
    )


@finding(
    "need_left_open",
    title="Conversations that end with the user's need open",
    severity="medium",
    summary="the user's last turn pushes back, says it still does not work, or asks a question, and is no closing",
    description="The user left without what they came for: their last word was a complaint or an open question.",
    judge=("The conversation ends with the user's request resolved, or with a clear answer why it cannot be.",),
    reported=True,
)
def _need_left_open(rows, types):
    if not any(r["n_user_turns"] > 1 for r in rows):
        return None
    return Derived(
        {"max": 0},
        "the user's last turn (of two or more) pushes back, says it still does not work, "
        "or asks a question and is not a closing",
    )


@finding(
    "user_repeats",
    title="The user restates a request",
    severity="medium",
    summary="a later user turn restates an earlier one (most of its words again)",
    description="The user had to ask again: the agent did not act on the request the first time.",
    judge=("The agent acts on a request the first time; the user never has to restate it.",),
    reported=True,
)
def _user_repeats(rows, types):
    if not any(r["n_user_turns"] > 1 for r in rows):
        return None
    return Derived(
        {"max": 0},
        f"a user turn of {REPEAT_MIN_WORDS} or more words repeats {REPEAT_OVERLAP:.0%} of the words of an earlier turn",
    )


@finding(
    "unbacked_claims",
    title="Actions claimed but never done",
    severity="high",
    summary="the agent says an action is done when no state-changing call succeeded before it",
    description="The agent told the user something was done (cancelled, booked, refunded) that its tools never did.",
    judge=(
        "The agent only says an action is done after a tool call that did it succeeded; it never claims a "
        "change that failed or was not made.",
    ),
)
def _unbacked_claims(rows, types):
    if not any(r["n_tool_calls"] for r in rows):
        return None
    return Derived(
        {"max": 0},
        'an agent message says an action is done ("I\'ve cancelled", "has been refunded") while no '
        "state-changing tool call had succeeded before it, or the latest one had failed (one is enough: "
        "the user was told something untrue)",
    )


@finding(
    "policy_breaches",
    needs=("tools",),
    title="Calls the agent's instructions forbid",
    severity="high",
    summary="a call breaks a rule the agent's instructions state outright (a forbidden tool, a capped count)",
    description="The agent did what its own instructions forbid in so many words.",
    judge=("The agent follows every rule of its instructions; it never does what they forbid.",),
)
def _policy_breaches(rows, types):
    ruled = [r for r in rows if any((r.get("policy_rules") or {}).values())]
    if not ruled:
        return None
    # in the order the instructions state them, each once
    forbidden = list(dict.fromkeys(str(name) for r in ruled for name in r["policy_rules"].get("forbidden") or ()))
    limits = list(
        dict.fromkeys((str(noun), int(n)) for r in ruled for noun, n in r["policy_rules"].get("limits") or ())
    )
    said = "; ".join(
        ([f"tools forbidden outright: {', '.join(forbidden)}"] if forbidden else [])
        + ([f"at most {', '.join(f'{n} {noun}(s)' for noun, n in limits)} per call"] if limits else [])
    )
    return Derived(
        {"max": 0},
        f"a call breaks a rule the agent's instructions state outright ({said}; read in {len(ruled)} of "
        f"{len(rows)} traces); one is enough: the agent did what it was told not to",
    )


# -- behaviour relative to this experiment's own distribution -------------------------------------


@finding(
    "answered_without_tools",
    needs=(
        "tools",
        "answers",
    ),
    title="Answers given without consulting any tool",
    severity="medium",
    summary="no tool call where nearly every request uses tools",
    description="The agent answered from its own knowledge where it nearly always looks things up first.",
    judge=("Facts in the response come from the agent's tools, not from its own assumptions.",),
    habit=True,
)
def _answered_without_tools(rows, types):
    n = len(rows)
    with_tools = [r for r in rows if r["n_tool_calls"]]
    if not (len(with_tools) >= 0.8 * n and n >= 10):
        return None
    # Request types that are mostly answered without tools (greetings, "what can you do") are exempt.
    exempt = [
        name
        for name in types.names
        if (members := [r for r in rows if r["query_type"] == name])
        and sum(r["n_tool_calls"] > 0 for r in members) < 0.5 * len(members)
    ]
    params: dict[str, Any] = {"min": 1}
    if exempt:
        params.update(
            {"exempt_types": exempt, "types": [{"name": nm, "terms": t} for nm, t in zip(types.names, types.terms)]}
        )
    return Derived(
        params,
        f"the agent makes no tool call at all, while {len(with_tools)} of {n} traces "
        f"({len(with_tools) / n:.0%}) use tools"
        + (f"; request types mostly answered without tools are exempt ({', '.join(exempt)})" if exempt else ""),
    )


@finding(
    "repeated_calls",
    needs=("tools",),
    title="Loops: the same tool call repeated",
    severity="medium",
    summary="the same call repeats beyond the usual",
    description="The agent repeated itself: a retry loop or a lost thread.",
    outlier=True,
)
def _repeated_calls(rows, types):
    with_tools = [r for r in rows if r["n_tool_calls"]]
    if not with_tools:
        return None
    identical = [r["max_identical_calls"] for r in with_tools]
    limit = max(1, math.ceil(percentile(identical, 95)) if percentile(identical, 50) > 1 else 1)
    streaks = [r["max_same_tool_streak"] for r in with_tools]
    streak_limit = max(3, math.ceil(outlier_threshold(streaks, 95, 2.0)))
    return Derived(
        {"max": limit, "max_streak": streak_limit},
        f"the same tool is called with the same arguments more than {limit}×, or one tool more than "
        f"{streak_limit}× in a row ({streak_limit}: the p95 of same-tool streaks, at least 2× the median and 3)",
    )


@finding(
    "long_tool_chains",
    needs=("tools",),
    title="Unusually long tool chains",
    severity="medium",
    summary="more tool calls than the experiment's p90",
    description="Far more tool calls than this agent usually needs: it is searching, retrying or lost.",
    outlier=True,
)
def _long_tool_chains(rows, types):
    if not any(r["n_tool_calls"] for r in rows):
        return None
    limit = max(2, math.ceil(outlier_threshold([r["n_tool_calls"] for r in rows], 90, 1.5)))
    return Derived(
        {"max": limit},
        f"it makes more than {limit} tool calls (the p90 of {len(rows)} traces (at least 1.5× the median))",
    )


@finding(
    "long_conversations",
    title="Unusually long conversations",
    severity="medium",
    summary="more user turns than the experiment's p90",
    description="Conversations that drag on usually mean the agent is not resolving the request.",
    outlier=True,
)
def _long_conversations(rows, types):
    turns = [r["n_user_turns"] for r in rows]
    if percentile(turns, 50) < 2:
        return None
    limit = max(3, math.ceil(outlier_threshold(turns, 90, 1.5)))
    return Derived(
        {"max": limit},
        f"it takes more than {limit} user turns (the p90 of {len(rows)} traces (at least 1.5× the median))",
    )


@finding(
    "unconfirmed_writes",
    needs=("tools",),
    title="State changes without the user's go-ahead",
    severity="high",
    summary="a state-changing call comes without a go-ahead in the user's latest turn",
    description="Actions that change state should follow an explicit confirmation.",
    judge=(
        "Before changing anything on the user's behalf (creating, updating, cancelling, paying, sending), "
        "the agent states exactly what it will change and gets the user's explicit confirmation.",
    ),
    habit=True,
)
def _unconfirmed_writes(rows, types):
    if not any(r["n_write_calls"] for r in rows):
        return None
    rule = (
        "a state-changing tool call (named with a write verb) comes without an affirmation in "
        "the user's most recent turn"
    )
    # A go-ahead is a failure only where the agent is told to get one. Where its instructions are in the
    # traces and never ask for it (a support agent told to enable roaming at no cost), acting on the
    # user's request is the job: the check is reported, not counted.
    read = [r.get("policy_asks_confirmation") for r in rows if r.get("policy_asks_confirmation") is not None]
    if read and not any(read):
        return Derived(
            {"max": 0, "report_only": True},
            f"{rule}; reported, not a failure: the agent's instructions (read in {len(read)} of {len(rows)} traces) "
            "never ask for the user's go-ahead before a change",
            title="State changes without the user's go-ahead (its instructions ask for none)",
            severity="low",
        )
    if read:
        return Derived({"max": 0}, f"{rule}; the agent's instructions ask for the user's go-ahead before a change")
    return Derived({"max": 0}, rule)


@finding(
    "ungrounded_writes",
    needs=("tools",),
    title="State changes with values nobody provided",
    severity="high",
    summary="a state-changing call uses values (ids, amounts, dates) that neither the user nor a tool provided",
    description="The agent acted on values it invented or misread: wrong arguments.",
    judge=(
        "Every value the agent acts on (ids, amounts, dates, names) comes from the user or from a tool "
        "result; the agent never guesses or invents one.",
    ),
    habit=True,
)
def _ungrounded_writes(rows, types):
    if not any(r["n_write_calls"] for r in rows):
        return None
    return Derived(
        {"max": 0},
        "a state-changing call uses argument values (ids, amounts, dates, names) found in neither the "
        "user's messages nor earlier tool results",
    )


@finding(
    "repeated_writes",
    needs=("tools",),
    title="The same state change repeated",
    severity="medium",
    summary="the same state change repeats beyond the usual",
    description="Repeating an action usually means earlier attempts were wrong.",
    outlier=True,
)
def _repeated_writes(rows, types):
    writers = [r for r in rows if r["n_write_calls"]]
    if not writers:
        return None
    limit = max(2, math.ceil(percentile([r["max_write_repeats"] for r in writers], 95)))
    return Derived(
        {"max": limit},
        f"one state-changing tool is called more than {limit}× in a conversation (the p95 of "
        "conversations with state changes, at least 2)",
    )


@finding(
    "extra_routing",
    needs=("tools",),
    title="Requests routed to more sub-agents than needed",
    severity="medium",
    summary="more sub-agents than the common path for a request",
    description="Calling several sub-agents where most requests need one wastes time and tokens.",
    judge=(
        "The agent consults only the specialists (sub-agents) the question needs: a question about "
        "one domain is answered by that domain's specialist alone.",
    ),
)
def _extra_routing(rows, types):
    from collections import Counter

    nested = Counter(t["name"] for r in rows for t in r["tools"] if t.get("nested"))
    if not nested:
        return None
    using = [x for x in (len({t["name"] for t in r["tools"] if t["name"] in nested}) for r in rows) if x]
    common = Counter(using).most_common(1)[0][0] if using else 1
    if not (using and sum(x <= common for x in using) / len(using) >= 0.6):
        return None
    return Derived(
        {"max_distinct": common, "tools": sorted(nested)},
        f"a request reaches more than {common} of the sub-agents ({', '.join(sorted(nested))}); "
        f"{sum(x <= common for x in using)} of {len(using)} routed requests use at most {common}",
    )


# -- cost and latency, per request type where there is enough data ---------------------------------


@finding(
    "slow_traces",
    title="Latency outliers",
    severity="low",
    summary="latency above the p95 for the request type",
    description="Requests much slower than usual for their kind.",
    outlier=True,
)
def _slow_traces(rows, types):
    durations = [r["duration_ms"] for r in rows]
    if not any(durations):
        return None
    limit = round(outlier_threshold(durations, 95, 2.0), 1)
    per_type = _per_type_limits(rows, types, lambda r: r["duration_ms"], 95, 2.0)
    return Derived(
        {"max_ms": limit, **per_type},
        f"it is slower than {limit / 1000:.1f} s, the p95 of {len(rows)} traces (at least 2× the median)"
        + ("; per request type where a type has 20+ traces" if per_type else ""),
    )


@finding(
    "token_outliers",
    needs=("tokens",),
    title="Token usage outliers",
    severity="low",
    summary="tokens above the p95 for the request type",
    description="Requests that cost far more than usual for their kind.",
    outlier=True,
)
def _token_outliers(rows, types):
    used = [r for r in rows if r["tokens_in"] + r["tokens_out"]]
    if len(used) < max(5, len(rows) // 4):
        return None
    limit = math.ceil(outlier_threshold([r["tokens_in"] + r["tokens_out"] for r in used], 95, 2.0))
    per_type = _per_type_limits(used, types, lambda r: r["tokens_in"] + r["tokens_out"], 95, 2.0)
    return Derived(
        {"max": limit, **per_type},
        f"it uses more than {limit} tokens, the p95 of {len(used)} traces with usage (at least 2× the median)"
        + ("; per request type where a type has 20+ traces" if per_type else ""),
    )


# -- reported and judged, no pass/fail code scorer ---------------------------------------------------
# A hand-off is correct when policy requires it: code cannot tell right from wrong on its own.


@finding(
    "give_up_or_handoff",
    title="Give-ups and hand-offs",
    severity="medium",
    scorer="judge",
    summary="hand-offs and give-ups: judged by an LLM (code cannot tell a correct hand-off from a wrong one)",
    description="The agent did not resolve the request itself; whether that was right depends on policy, which an "
    "LLM judge checks.",
    judge=(
        "The response resolves the request itself. Declining or handing off to a human is acceptable "
        "only when the request is out of scope or policy requires it, and the response says why.",
    ),
)
def _give_up_or_handoff(rows, types):
    return Derived(
        {},
        "the agent calls a hand-off/escalation tool, or its final answer apologises, declines or says it cannot help",
    )
