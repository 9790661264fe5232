"""Pass/fail checks over trace features: the logic behind every generated code scorer.

Each check takes the features of one trace (see `trace_features`) and its parameters (thresholds
decided from the experiment's own distribution) and returns `(passed, rationale)`. The analyzer
runs them over every digest to measure prevalence; the generated `scorers.py` runs them on the
traces it is given. Like `features.py`, this file is copied into the generated suite, so it uses
the standard library only.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .features import is_write_tool

CheckResult = tuple[bool, str]
CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any]], CheckResult]] = {}
CANONICAL: dict[str, str] = {}  # every registered name (aliases included) -> the check's own name


def register_check(name: str, *aliases: str):
    """Register a check under its finding's name; `aliases` are names earlier versions wrote into
    scorer specs, so a living suite's scorers.py keeps rendering and running."""

    def register(fn):
        for key in (name, *aliases):
            CHECKS[key] = fn
            CANONICAL[key] = name
        return fn

    return register


def run_check(kind: str, features: dict[str, Any], params: dict[str, Any]) -> CheckResult:
    return CHECKS[kind](features, params)


def scorer_verdict(
    kind: str, features: dict[str, Any], params: dict[str, Any]
) -> tuple[bool, str, dict[str, Any] | None]:
    """What a code scorer returns, (value, rationale, metadata): the check's verdict, except that an
    outlier of this experiment its traces did not tie to failures (`report_only`) is reported, not failed.
    The suite's scorers and their registered forms both return this, so they cannot disagree."""
    passed, rationale = run_check(kind, features, params)
    if not passed and params.get("report_only"):
        return True, f"outlier (reported, not a failure): {rationale}", {"outlier": True}
    return passed, rationale, None


def classify_request(text: str, types: list[dict[str, Any]]) -> str | None:
    """The query type whose terms overlap the request most (None when nothing overlaps)."""
    words = set(re.findall(r"[a-z]+", (text or "").lower()))
    best, best_score = None, 0
    for t in types:
        score = sum(1 for term in t.get("terms", []) if set(term.split()) <= words)
        if score > best_score:
            best, best_score = t["name"], score
    return best


def _limit(f: dict[str, Any], p: dict[str, Any], key: str) -> tuple[float, str]:
    """The global limit, or the request type's own limit when the check has per-type limits."""
    by_type = p.get("by_type") or {}
    if by_type:
        kind = classify_request(f.get("request", ""), p.get("types", []))
        if kind in by_type:
            return float(by_type[kind]), f" for {kind} requests"
    return float(p[key]), ""


def _has_spans(f: dict[str, Any]) -> bool:
    # MLflow gives a dataset row without a source trace a one-span stand-in: nothing to inspect.
    return f.get("n_spans", 0) > 1


@register_check("error_traces", "trace_ok")
def _check_trace_ok(f, p):
    if f["status"] == "ERROR":
        first = f["exceptions"][0] if f.get("exceptions") else None
        detail = f": {first[0]}: {first[1]}" if first else ""
        return False, f"the trace ended with status ERROR{detail}"
    return True, f"trace status {f['status']}"


@register_check("tool_failures", "tool_errors")
def _check_tool_errors(f, p):
    failed = [t for t in f.get("tools", []) if not t["ok"]]
    if p.get("unrecovered_only"):
        # The agent usually recovers from tool failures here: only a failure after which no tool
        # call succeeded (the agent stopped or gave up) fails the conversation.
        count = f.get("n_unrecovered_tool_errors", 0)
        label = "tool call(s) failed and nothing succeeded after them"
    else:
        count = len(failed)
        label = "tool call(s) failed"
    limit = int(p.get("max", 0))
    if count > limit:
        names = ", ".join(sorted({t["name"] for t in failed}))
        sample = failed[-1].get("error") if failed else "error"
        return False, f"{count} {label} ({names}); last error: {sample}"
    if not _has_spans(f):
        return True, "no tool spans to inspect"
    recovered = f" ({len(failed)} failed, each followed by a successful call)" if failed else ", none failed"
    return True, f"{f['n_tool_calls']} tool call(s){recovered}"


@register_check("llm_failures", "llm_errors")
def _check_llm_errors(f, p):
    if f.get("llm_errors", 0) > 0:
        return False, f"{f['llm_errors']} LLM call(s) failed"
    return True, f"{f.get('llm_calls', 0)} LLM call(s), none failed"


@register_check("missing_answer", "has_answer")
def _check_has_answer(f, p):
    if not f["has_answer"]:
        return False, "the agent returned no answer"
    if f.get("answer_truncated"):
        return False, "the answer looks cut off mid-sentence"
    minimum = int(p.get("min_chars", 1))
    if f["answer_chars"] < minimum:
        return False, f"the answer has {f['answer_chars']} characters (< {minimum})"
    return True, f"answer of {f['answer_chars']} characters"


@register_check("repeated_calls", "no_repeated_calls")
def _check_no_repeated_calls(f, p):
    limit = int(p.get("max", 1))
    if f["max_identical_calls"] > limit:
        return (
            False,
            f"the same tool call with the same arguments was made {f['max_identical_calls']} times (limit {limit})",
        )
    streak = int(p.get("max_streak", 10**6))
    if f.get("max_same_tool_streak", 0) > streak:
        return False, f"one tool was called {f['max_same_tool_streak']} times in a row (limit {streak})"
    return True, "no repeated identical tool calls"


@register_check("long_tool_chains", "tool_budget")
def _check_tool_budget(f, p):
    limit, scope = _limit(f, p, "max")
    if f["n_tool_calls"] > limit:
        return False, f"{f['n_tool_calls']} tool calls (typical at most {limit:.0f}{scope})"
    return True, f"{f['n_tool_calls']} tool calls (limit {limit:.0f}{scope})"


@register_check("long_conversations", "conversation_length")
def _check_conversation_length(f, p):
    limit = int(p["max"])
    if f["n_user_turns"] > limit:
        return False, f"{f['n_user_turns']} user turns (typical at most {limit}): the conversation dragged on"
    return True, f"{f['n_user_turns']} user turns (limit {limit})"


@register_check("slow_traces", "latency_budget")
def _check_latency_budget(f, p):
    limit, scope = _limit(f, p, "max_ms")
    if not _has_spans(f) and not f.get("duration_ms"):
        return True, "no timing to inspect"
    if f["duration_ms"] > limit:
        return False, f"took {f['duration_ms'] / 1000:.1f} s (budget {limit / 1000:.1f} s{scope})"
    return True, f"took {f['duration_ms'] / 1000:.1f} s (budget {limit / 1000:.1f} s{scope})"


@register_check("token_outliers", "token_budget")
def _check_token_budget(f, p):
    limit, scope = _limit(f, p, "max")
    total = f.get("tokens_in", 0) + f.get("tokens_out", 0)
    if total > limit:
        return False, f"used {total} tokens (budget {limit:.0f}{scope})"
    return True, f"used {total} tokens (budget {limit:.0f}{scope})"


@register_check("give_up_or_handoff", "no_give_up")
def _check_no_give_up(f, p):
    if f.get("handoff"):
        return False, "the agent handed the conversation off (escalation/transfer tool)"
    if f.get("gives_up"):
        return False, "the final answer apologises, declines or says it cannot help"
    return True, "the agent neither gave up nor handed off"


@register_check("unconfirmed_writes", "confirmed_writes")
def _check_confirmed_writes(f, p):
    n = f.get("n_unconfirmed_writes", 0)
    if n > int(p.get("max", 0)):
        return False, f"{n} state-changing action(s) taken without the user's go-ahead in the preceding turn"
    return True, f"{f.get('n_write_calls', 0)} state-changing action(s), each after a go-ahead"


@register_check("extra_routing", "routing_path")
def _check_routing_path(f, p):
    """Too many distinct tools for what the request needed, relative to the common paths."""
    limit = int(p["max_distinct"])
    watched = set(p.get("tools") or [])
    used = {t["name"] for t in f.get("tools", [])}
    if watched:
        used &= watched
    if len(used) > limit:
        return (
            False,
            f"called {len(used)} different {'sub-agents' if watched else 'tools'} ({', '.join(sorted(used))}); common paths use at most {limit}",
        )
    return True, f"called {len(used)} different {'sub-agents' if watched else 'tools'} (limit {limit})"


@register_check("ungrounded_writes", "grounded_writes")
def _check_grounded_writes(f, p):
    """State-changing calls whose argument values nobody said: not the user, not a tool."""
    n = f.get("n_ungrounded_writes", 0)
    if n > int(p.get("max", 0)):
        examples = "; ".join(f.get("ungrounded_writes", [])[:3])
        return False, f"{n} state-changing call(s) used values that neither the user nor any tool provided: {examples}"
    return True, f"{f.get('n_write_calls', 0)} state-changing call(s), every argument grounded"


@register_check("repeated_writes")
def _check_repeated_writes(f, p):
    limit = int(p["max"])
    if f.get("max_write_repeats", 0) > limit:
        return False, f"the same state-changing action ran {f['max_write_repeats']} times (typical at most {limit})"
    return True, "no state-changing action repeated beyond the usual"


@register_check("answered_without_tools", "uses_tools")
def _check_uses_tools(f, p):
    if not _has_spans(f):
        return True, "no spans to inspect"
    minimum = int(p.get("min", 1))
    if p.get("exempt_types") and classify_request(f.get("request", ""), p.get("types", [])) in p["exempt_types"]:
        return True, "a kind of request usually answered without tools"
    if f["n_tool_calls"] < minimum:
        return (
            False,
            f"answered with {f['n_tool_calls']} tool call(s) where this agent almost always consults its tools",
        )
    return True, f"{f['n_tool_calls']} tool call(s)"


@register_check("user_pushback")
def _check_user_pushback(f, p):
    """The user corrected the agent, insisted or complained after their first turn."""
    n = f.get("n_user_pushback", 0)
    if n > int(p.get("max", 0)):
        return False, f"{n} user turn(s) push back (correct the agent, insist or complain)"
    return True, f"{f.get('n_user_turns', 0)} user turn(s), none pushing back"


@register_check("need_left_open")
def _check_need_left_open(f, p):
    """The user's last turn pushes back, says it still does not work, or asks a question (no closing)."""
    if f.get("need_open"):
        kept = f.get("user_turns") or []
        said = f": {kept[-1][-160:]!r}" if kept and len(kept) == f.get("n_user_turns") else ""  # the last one kept
        return False, f"the conversation ends with the user's need open{said}"
    return True, "the user's last turn closes the conversation or asks nothing more"


@register_check("user_repeats")
def _check_user_repeats(f, p):
    """A later user turn restates an earlier request."""
    n = f.get("n_user_repeats", 0)
    if n > int(p.get("max", 0)):
        return False, f"{n} user turn(s) restate an earlier request"
    return True, f"{f.get('n_user_turns', 0)} user turn(s), none restating an earlier one"


@register_check("unbacked_claims")
def _check_unbacked_claims(f, p):
    """The agent said an action was done that no successful state-changing call did."""
    n = f.get("n_unbacked_claims", 0)
    if n > int(p.get("max", 0)):
        example = (f.get("unbacked_claims") or [""])[0]
        return False, f"{n} message(s) claim an action no successful state-changing call performed: {example!r}"
    return True, "every action the agent claims follows a successful state-changing call"


@register_check("policy_breaches")
def _check_policy_breaches(f, p):
    """A call broke a rule the agent's instructions state outright (a forbidden tool, a capped count)."""
    n = f.get("n_policy_breaches", 0)
    if n > int(p.get("max", 0)):
        return False, f"{n} call(s) break the agent's instructions: {(f.get('policy_breaches') or [''])[0]}"
    return True, "no call breaks a rule the agent's instructions state outright"


# ------------------------------------------------------------------------------------------------
# Declarative checks: a check an LLM session proposes is data, evaluated here, never code it wrote.
# The language (schema and limits in trace2eval's generate/rules.py): a condition is
#   {"feature": NAME, "op": OP, "value": V}             a number, flag or label of the trace
#   {"text": FIELD, "contains_any": [...]}              case-insensitive substrings of a text field
#   {"text": FIELD, "words_any": [...]}                 whole words (or word sequences)
#   {"tool_calls": FILTER, "op": OP, "value": N}        how many tool calls match FILTER
#   {"all": [...]}, {"any": [...]}, {"not": COND}
# No regular expressions (a pattern from a model could backtrack for minutes on one trace), no
# attribute access, no names but the ones listed below: evaluation is a bounded walk over data.

RULE_FEATURES = (
    "duration_ms",
    "n_spans",
    "answer_chars",
    "n_tool_calls",
    "n_distinct_tools",
    "n_tool_errors",
    "n_unrecovered_tool_errors",
    "max_identical_calls",
    "max_same_tool_streak",
    "n_write_calls",
    "n_unconfirmed_writes",
    "max_write_repeats",
    "n_ungrounded_writes",
    "n_agent_spans",
    "llm_calls",
    "llm_errors",
    "n_exceptions",
    "tokens_in",
    "tokens_out",
    "n_user_turns",
    "has_answer",
    "answer_truncated",
    "gives_up",
    "handoff",
    "status",
    "root_name",
    "request_shape",
    "n_user_pushback",
    "n_user_repeats",
    "need_open",
    "n_unbacked_claims",
)
RULE_TEXTS = ("request", "answer", "user_turns", "last_user_turn", "tool_names", "tool_args", "tool_errors")
RULE_OPS = ("<", "<=", ">", ">=", "==", "!=")
# What a rule can read without the trace's spans (a dataset row's inputs and outputs, its status and
# timing): a rule using anything else has nothing to check when there are no spans.
_WITHOUT_SPANS = {
    "duration_ms",
    "answer_chars",
    "n_user_turns",
    "has_answer",
    "answer_truncated",
    "gives_up",
    "status",
    "root_name",
    "request_shape",
    "request",
    "answer",
    "user_turns",
    "last_user_turn",
}
_TRACE_ONLY = (set(RULE_FEATURES) | set(RULE_TEXTS)) - _WITHOUT_SPANS


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, bool) or isinstance(left, bool) or isinstance(right, str) or isinstance(left, str):
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        return False  # order comparisons only between numbers
    try:
        a, b = float(left), float(right)
    except (TypeError, ValueError):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}.get(op, False)


def _texts(f: dict[str, Any], field: str) -> list[str]:
    tools = f.get("tools") or []
    if field == "user_turns":
        return [str(t) for t in f.get("user_turns") or []]
    if field == "last_user_turn":
        turns = f.get("user_turns") or []
        return [str(turns[-1])] if turns else []
    if field == "tool_names":
        return [str(t.get("name", "")) for t in tools]
    if field == "tool_args":
        return [str(t.get("args", "")) for t in tools]
    if field == "tool_errors":
        return [str(t.get("error") or "") for t in tools if not t.get("ok", True)]
    return [str(f.get(field) or "")]


def _has_words(text: str, phrase: str) -> bool:
    words, wanted = re.findall(r"[a-z0-9]+", text.lower()), re.findall(r"[a-z0-9]+", phrase.lower())
    n = len(wanted)
    return bool(n) and any(words[i : i + n] == wanted for i in range(len(words) - n + 1))


def _tool_matches(call: dict[str, Any], flt: dict[str, Any]) -> bool:
    name = str(call.get("name", ""))
    if "name" in flt and name != flt["name"]:
        return False
    if "name_contains" in flt and str(flt["name_contains"]).lower() not in name.lower():
        return False
    if "ok" in flt and bool(call.get("ok", True)) != bool(flt["ok"]):
        return False
    if "nested" in flt and bool(call.get("nested", False)) != bool(flt["nested"]):
        return False
    if "args_contains" in flt and str(flt["args_contains"]).lower() not in str(call.get("args", "")).lower():
        return False
    return True


def rule_holds(f: dict[str, Any], cond: dict[str, Any]) -> tuple[bool, str]:
    """(whether `cond` holds for the features `f`, what was seen). Total: never raises on data."""
    if not isinstance(cond, dict):
        return False, "not a condition"
    if "all" in cond or "any" in cond:
        parts = [rule_holds(f, c) for c in cond.get("all", cond.get("any")) or []]
        held = [why for ok, why in parts if ok]
        if "all" in cond:
            return bool(parts) and len(held) == len(parts), " and ".join(held)
        return bool(held), held[0] if held else "none held"
    if "not" in cond:
        ok, why = rule_holds(f, cond["not"])
        return not ok, f"not ({why})"
    if "feature" in cond:
        value = f.get(str(cond["feature"]))
        ok = _compare(value, str(cond.get("op")), cond.get("value"))
        return ok, f"{cond['feature']} = {value!r}"
    if "text" in cond:
        texts = _texts(f, str(cond["text"]))
        for phrase in cond.get("contains_any") or []:
            if any(str(phrase).lower() in t.lower() for t in texts):
                return True, f"{cond['text']} contains {str(phrase)!r}"
        for phrase in cond.get("words_any") or []:
            if any(_has_words(t, str(phrase)) for t in texts):
                return True, f"{cond['text']} has {str(phrase)!r}"
        return False, f"{cond['text']} has none of the phrases"
    if "tool_calls" in cond:
        flt = cond["tool_calls"] if isinstance(cond["tool_calls"], dict) else {}
        count = sum(1 for call in f.get("tools") or [] if isinstance(call, dict) and _tool_matches(call, flt))
        return _compare(count, str(cond.get("op")), cond.get("value")), f"{count} matching tool call(s)"
    return False, "unknown condition"


def _rule_names(cond: Any) -> set[str]:
    if not isinstance(cond, dict):
        return set()
    found = {str(cond[k]) for k in ("feature", "text") if k in cond}
    if "tool_calls" in cond:
        found.add("tool_names")
    for key in ("all", "any"):
        for part in cond.get(key) or []:
            found |= _rule_names(part)
    return found | _rule_names(cond.get("not"))


@register_check("rule")
def _check_rule(f, p):
    """A declarative check: fails when `fail_when` holds; `message` says what that means."""
    if _rule_names(p.get("fail_when")) & _TRACE_ONLY and not _has_spans(f):
        return True, "no trace to check: this rule reads the trace's spans"
    fired, why = rule_holds(f, p.get("fail_when") or {})
    if fired:
        return False, f"{p.get('message') or 'the failure condition held'} ({why})"
    return True, "the failure condition did not hold"


# ------------------------------------------------------------------------------------------------
# Regression checks: a candidate version against what production did on the same row. A dataset row
# drawn from a production trace records that behaviour (`production_baseline`, in its metadata);
# run_eval.py hands it to these scorers as the row's expectation `production_baseline`. On production
# itself they pass by construction (the baseline is read from the same trace), so a paired comparison
# sees only what a candidate lost. Rows without a baseline (edge cases, rows added by hand, any trace
# outside the dataset) get the value "n/a": not a pass, not a fail, left out of the scorer's mean.

BASELINE_KEY = "production_baseline"
NOT_APPLICABLE = "n/a"
BASELINE_CHECKS = ("keeps_production_tools", "keeps_confirmation")
# A new version may take a shorter path than production (one specialist where production called two,
# a lookup it no longer needs), so not every tool must come back; one that no longer gets most of what
# production consulted answers from less than production knew.
KEPT_TOOLS_SHARE = 0.5


def production_baseline(f: dict[str, Any]) -> dict[str, Any] | None:
    """What production did on a trace that a next version should keep: the tools it called
    successfully, the state changes among them, and how many of its writes came without a go-ahead.
    None when the trace has no spans to read (a stand-in, a row without its trace)."""
    if not _has_spans(f):
        return None
    ok = sorted({str(t["name"]) for t in f.get("tools") or [] if t.get("ok")})
    return {
        "tools": ok,
        "writes": [name for name in ok if is_write_tool(name)],
        "n_write_calls": int(f.get("n_write_calls", 0)),
        "n_unconfirmed_writes": int(f.get("n_unconfirmed_writes", 0)),
    }


def baseline_verdict(
    kind: str, f: dict[str, Any], params: dict[str, Any], expectations: Any
) -> tuple[bool | str, str, dict[str, Any] | None]:
    """A regression scorer's (value, rationale, metadata): "n/a" where there is nothing to compare."""
    baseline = expectations.get(BASELINE_KEY) if isinstance(expectations, dict) else None
    if not isinstance(baseline, dict):
        return (
            NOT_APPLICABLE,
            "not applicable: the row has no production baseline (not drawn from a trace)",
            {"not_applicable": True},
        )
    if not _has_spans(f):
        return NOT_APPLICABLE, "not applicable: no trace spans to compare with production", {"not_applicable": True}
    passed, rationale = CHECKS[kind](f, {**params, "baseline": baseline})
    if passed is None:
        return NOT_APPLICABLE, f"not applicable: {rationale}", {"not_applicable": True}
    return passed, rationale, None


@register_check("keeps_production_tools")
def _check_keeps_production_tools(f, p):
    """The tools production called successfully on this row: every state change it made, and at
    least KEPT_TOOLS_SHARE of the distinct tools, called successfully again."""
    base = p["baseline"]
    wanted = [str(t) for t in base.get("tools") or []]
    if not wanted:
        return None, "production called no tool successfully on this row: nothing to keep"
    share = float(p.get("min_share", KEPT_TOOLS_SHARE))
    used = {str(t["name"]) for t in f.get("tools") or [] if t.get("ok")}
    lost_writes = [w for w in base.get("writes") or [] if w not in used]
    kept = [t for t in wanted if t in used]
    if not used:
        failed = sum(1 for t in f.get("tools") or [] if not t.get("ok"))
        how = f"its {failed} tool call(s) all failed" if failed else "it called no tool"
        return False, f"production used {len(wanted)} tool(s) successfully ({', '.join(wanted[:5])}); {how}"
    if lost_writes:
        return False, f"production's state change(s) {', '.join(lost_writes[:5])} did not happen (no successful call)"
    if len(kept) < share * len(wanted):
        lost = [t for t in wanted if t not in used]
        return (
            False,
            f"kept {len(kept)} of production's {len(wanted)} tools (< {share:.0%}); dropped {', '.join(lost[:5])}",
        )
    return True, f"kept {len(kept)} of production's {len(wanted)} tools and every state change it made"


@register_check("keeps_confirmation")
def _check_keeps_confirmation(f, p):
    """No more state changes without the user's go-ahead than production made on this row."""
    base = p["baseline"]
    # Where production changed nothing, a candidate that now changes state unasked regresses too
    # (a chat agent traced per turn: the write moved to the turn before the go-ahead).
    allowed = int(base.get("n_unconfirmed_writes") or 0)
    n = int(f.get("n_unconfirmed_writes", 0))
    if n > allowed:
        return False, (
            f"{n} state-changing action(s) without the user's go-ahead in the preceding turn; production had {allowed}"
        )
    return True, f"{f.get('n_write_calls', 0)} state-changing action(s), {n} without a go-ahead (production: {allowed})"
