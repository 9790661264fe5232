"""Pass/fail checks over trace features: the logic behind every generated code scorer.

Each check takes the features of one trace (see `trace_features`) and its parameters (thresholds
decided from the experiment's own distribution) and returns `(passed, rationale)`. The analyzer
runs them over every digest to measure prevalence; the generated `scorers.py` runs them on the
traces it is given. Like `features.py`, this file is copied into the generated suite, so it uses
the standard library only.
"""

from __future__ import annotations

from typing import Any, Callable

CheckResult = tuple[bool, str]
CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any]], CheckResult]] = {}


def register_check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn

    return register


def run_check(kind: str, features: dict[str, Any], params: dict[str, Any]) -> CheckResult:
    return CHECKS[kind](features, params)


def _has_spans(f: dict[str, Any]) -> bool:
    # MLflow gives a dataset row without a source trace a one-span stand-in: nothing to inspect.
    return f.get("n_spans", 0) > 1


@register_check("trace_ok")
def _check_trace_ok(f, p):
    if f["status"] == "ERROR":
        first = f["exceptions"][0] if f.get("exceptions") else None
        detail = f": {first[0]}: {first[1]}" if first else ""
        return False, f"the trace ended with status ERROR{detail}"
    return True, f"trace status {f['status']}"


@register_check("tool_errors")
def _check_tool_errors(f, p):
    failed = [t for t in f.get("tools", []) if not t["ok"]]
    limit = int(p.get("max", 0))
    if len(failed) > limit:
        names = ", ".join(sorted({t["name"] for t in failed}))
        sample = failed[0].get("error") or "error"
        return False, f"{len(failed)} tool call(s) failed ({names}); first error: {sample}"
    if not _has_spans(f):
        return True, "no tool spans to inspect"
    return True, f"{f['n_tool_calls']} tool call(s), none failed"


@register_check("llm_errors")
def _check_llm_errors(f, p):
    if f.get("llm_errors", 0) > 0:
        return False, f"{f['llm_errors']} LLM call(s) failed"
    return True, f"{f.get('llm_calls', 0)} LLM call(s), none failed"


@register_check("has_answer")
def _check_has_answer(f, p):
    if not f["has_answer"]:
        return False, "the agent returned no answer"
    if f.get("answer_truncated"):
        return False, "the answer looks cut off mid-sentence"
    minimum = int(p.get("min_chars", 1))
    if f["answer_chars"] < minimum:
        return False, f"the answer has {f['answer_chars']} characters (< {minimum})"
    return True, f"answer of {f['answer_chars']} characters"


@register_check("no_repeated_calls")
def _check_no_repeated_calls(f, p):
    limit = int(p.get("max", 1))
    if f["max_identical_calls"] > limit:
        return False, f"the same tool call with the same arguments was made {f['max_identical_calls']} times (limit {limit})"
    streak = int(p.get("max_streak", 10**6))
    if f.get("max_same_tool_streak", 0) > streak:
        return False, f"one tool was called {f['max_same_tool_streak']} times in a row (limit {streak})"
    return True, "no repeated identical tool calls"


@register_check("tool_budget")
def _check_tool_budget(f, p):
    limit = int(p["max"])
    if f["n_tool_calls"] > limit:
        return False, f"{f['n_tool_calls']} tool calls (typical at most {limit})"
    return True, f"{f['n_tool_calls']} tool calls (limit {limit})"


@register_check("conversation_length")
def _check_conversation_length(f, p):
    limit = int(p["max"])
    if f["n_user_turns"] > limit:
        return False, f"{f['n_user_turns']} user turns (typical at most {limit}): the conversation dragged on"
    return True, f"{f['n_user_turns']} user turns (limit {limit})"


@register_check("latency_budget")
def _check_latency_budget(f, p):
    limit = float(p["max_ms"])
    if f["duration_ms"] > limit:
        return False, f"took {f['duration_ms'] / 1000:.1f} s (budget {limit / 1000:.1f} s)"
    return True, f"took {f['duration_ms'] / 1000:.1f} s (budget {limit / 1000:.1f} s)"


@register_check("token_budget")
def _check_token_budget(f, p):
    limit = int(p["max"])
    total = f.get("tokens_in", 0) + f.get("tokens_out", 0)
    if total > limit:
        return False, f"used {total} tokens (budget {limit})"
    return True, f"used {total} tokens (budget {limit})"


@register_check("no_give_up")
def _check_no_give_up(f, p):
    if f.get("handoff"):
        return False, "the agent handed the conversation off (escalation/transfer tool)"
    if f.get("gives_up"):
        return False, "the final answer apologises, declines or says it cannot help"
    return True, "the agent neither gave up nor handed off"


@register_check("confirmed_writes")
def _check_confirmed_writes(f, p):
    n = f.get("n_unconfirmed_writes", 0)
    if n > int(p.get("max", 0)):
        return False, f"{n} state-changing action(s) taken without the user's go-ahead in the preceding turn"
    return True, f"{f.get('n_write_calls', 0)} state-changing action(s), each after a go-ahead"


@register_check("routing_path")
def _check_routing_path(f, p):
    """Too many distinct tools for what the request needed, relative to the common paths."""
    limit = int(p["max_distinct"])
    watched = set(p.get("tools") or [])
    used = {t["name"] for t in f.get("tools", [])}
    if watched:
        used &= watched
    if len(used) > limit:
        return False, f"called {len(used)} different {'sub-agents' if watched else 'tools'} ({', '.join(sorted(used))}); common paths use at most {limit}"
    return True, f"called {len(used)} different {'sub-agents' if watched else 'tools'} (limit {limit})"
