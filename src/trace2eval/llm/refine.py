"""One LLM session for one task: the model refines what the deterministic step just wrote.

`refine(session, task)` is called by the runner once the task's deterministic output is on disk
(tasks never call the model). It starts the model from the state files and the skill (never from
an earlier conversation), runs the tool loop within the session's budgets, applies the proposals
that passed validation, and records the session in `state/llm_sessions.json`. If the model is
unavailable, the deterministic output stands, stderr and the state say `LLM unavailable: <reason>`,
and later sessions of the run skip the model instead of each waiting out their own retries. With
--require-llm that becomes a failure.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from trace2eval import ui
from trace2eval.errors import LLMUnavailable
from trace2eval.llm import ledger
from trace2eval.llm.apply import apply_staged, restore, snapshot
from trace2eval.llm.budget import Budget
from trace2eval.llm.clients import connect, resolve_model
from trace2eval.llm.ledger import LLMSessionRecord
from trace2eval.llm.loop import run_loop
from trace2eval.llm.prompts import first_message, system_prompt
from trace2eval.llm.tools import ToolContext, toolbox_for
from trace2eval.llm.tracing import traced_session
from trace2eval.sessions.plan import TASKS as PLAN_TASKS
from trace2eval.sessions.plan import now
from trace2eval.sessions.session import Session
from trace2eval.state.validation import Revalidate
from trace2eval.traces.redact import redact_text

TASKS = tuple(t.name for t in PLAN_TASKS if t.refinable)
UNAVAILABLE_WINDOW_S = 15 * 60  # an outage seen this recently is not retried by the next session
STOPS = {"finished": "completed", "end_turn": "completed", "unavailable": "unavailable"}


@dataclass(frozen=True)
class LLMOutcome:
    task: str
    outcome: str
    reason: str | None
    applied: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Entries for the task's summary in eval_tasks.json."""
        return {"llm": self.outcome, **({"llm_reason": self.reason[:300]} if self.reason else {})}


def refine(
    session: Session, task: str, failure: str | None = None, revalidate: Revalidate | None = None
) -> LLMOutcome | None:
    """Run the LLM session of `task` if an LLM is configured; None when it is not.

    `failure`: why the deterministic step could not finish (the fix task's repairs), told to the
    model. `revalidate`: runs the real validation again; the fix session's `run_validation` tool
    and its final check use it (without it, a fix session's changes are reverted, never kept
    unvalidated)."""
    config = session.config()
    if config.llm == "none" or task not in TASKS:
        return None
    record = LLMSessionRecord(
        task=task,
        provider=config.llm,
        model=resolve_model(config.llm, config.llm_model),
        started_at=now(),
        outcome="failed",
    )
    start = time.monotonic()
    held: dict[str, Any] = {}  # the client, once connected: its scrub() knows the credentials
    try:
        _run(
            session,
            config,
            task,
            record,
            ToolContext(session, config, task, failure=failure, revalidate=revalidate),
            held,
        )
    except LLMUnavailable as exc:
        record.outcome, record.reason = "unavailable", f"LLM unavailable: {exc}"
    except Exception as exc:  # a trace2eval bug must not cost the user the deterministic suite
        record.outcome = "failed"
        record.reason = f"LLM session failed: {type(exc).__name__}: {exc}"
        record.applied["traceback"] = traceback.format_exc()[-2000:]
    scrub = held["client"].scrub if "client" in held else redact_text
    record.reason = scrub(record.reason) if record.reason else None
    record.finished_at, record.seconds = now(), round(time.monotonic() - start, 1)
    ledger.append(session, record)
    _report(record)
    did_not_run = record.outcome in ("unavailable", "failed") or (
        record.outcome == "skipped" and "LLM unavailable" in (record.reason or "")
    )
    if config.require_llm and did_not_run:
        raise LLMUnavailable(
            record.reason or "the LLM session did not run",
            "--require-llm is set: fix the endpoint and resume, or drop --require-llm to keep the deterministic suite",
        )
    return LLMOutcome(task, record.outcome, record.reason, record.applied)


def _run(session: Session, config, task: str, record: LLMSessionRecord, ctx: ToolContext, held: dict[str, Any]) -> None:
    outage = ledger.recent_unavailability(session, UNAVAILABLE_WINDOW_S)
    if outage is not None:
        record.outcome = "skipped"
        record.reason = f"{outage.reason} (seen by the {outage.task} session at {outage.finished_at}; not retried)"
        return
    left = config.llm_run_tokens - ledger.tokens_used(session)
    if left <= 0:
        record.outcome, record.reason = "skipped", f"the run's token budget ({config.llm_run_tokens:,}) is used up"
        return
    client = held["client"] = connect(config)
    record.endpoint, record.model = client.endpoint.messages_url, client.endpoint.model
    toolbox = toolbox_for(task, ctx)
    budget = Budget(config.llm_max_turns, config.llm_session_tokens, config.llm_session_seconds, left)
    before = snapshot(session) if task == "fix" else None
    with traced_session(config, session.id, task, client.endpoint) as trace:
        if trace.active:
            toolbox.around = trace.tool_span
            record.trace_id, record.trace_experiment = trace.trace_id, config.llm_trace_experiment
        elif trace.note:
            record.applied["tracing"] = trace.note
        told = {"failure": ctx.failure} if ctx.failure else None
        result = run_loop(
            client,
            system=system_prompt(task, config.llm_max_turns),
            first_message=first_message(session, task, told),
            toolbox=toolbox,
            budget=budget,
            max_tokens=config.llm_max_output_tokens,
        )
        record.outcome = STOPS.get(result.stop, "stopped")
        record.reason = (
            None
            if record.outcome == "completed"
            else (f"LLM unavailable: {result.reason}" if result.stop == "unavailable" else result.reason)
        )
        record.turns, record.usage = result.turns, result.usage.to_dict()
        record.tool_calls = dict(result.tool_calls)
        record.summary = client.scrub(result.final_text)[:1000] or None
        # Accepted proposals passed every check when they were submitted: keep them even when the
        # session stopped early or the endpoint went away mid-session.
        applied: dict[str, Any] = {}
        for earlier in ctx.applied_during_session:
            applied = _merge(applied, earlier)
        at_end = apply_staged(ctx)
        applied = _merge(applied, at_end)
        if task == "fix" and applied:
            if not at_end and ctx.validated:
                applied["validation"] = "passed with the LLM's repairs"  # its last run_validation saw them
            else:
                applied["validation"] = _validate_or_revert(session, before, ctx)
        record.applied.update(applied)
        if ctx.internal_errors:
            record.applied["internal_errors"] = ctx.internal_errors[:10]
        record.accepted, record.refused = ctx.accepted, ctx.refused
        trace.outputs = {
            "outcome": record.outcome,
            "reason": record.reason,
            "usage": record.usage,
            "accepted": len(ctx.accepted),
            "refused": len(ctx.refused),
            "applied": applied,
        }


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _validate_or_revert(session: Session, before: dict[str, str | None] | None, ctx: ToolContext) -> str:
    """Fix session: validate the repaired suite; if it fails, put the files back and validate that."""
    if ctx.revalidate is None:  # nothing can say the repairs work: they do not stay
        if before is not None:
            restore(session, before)
        return "the LLM's repairs could not be validated here and were reverted"
    outcome = ctx.revalidate("llm_fix", ctx.validations + 1)  # after its own runs: numbered on from them
    if outcome.passed:
        return "passed with the LLM's repairs"
    if before is not None:
        restore(session, before)
        outcome = ctx.revalidate("llm_fix_reverted", 1)
    return f"the LLM's repairs failed validation and were reverted ({outcome.status})"


def _report(record: LLMSessionRecord) -> None:
    tokens = record.usage.get("total_tokens", 0)
    if record.outcome == "unavailable":
        ui.warn(f"{record.reason} — the deterministic {record.task} output stands")
        return
    if record.outcome in ("skipped", "failed"):
        ui.warn(f"LLM {record.task} session {record.outcome}: {record.reason} — the deterministic output stands")
        return
    ui.say(
        f"LLM {record.task} session {record.outcome} in {record.turns} turn(s), {tokens:,} tokens: "
        f"{len(record.accepted)} proposal(s) accepted, {len(record.refused)} refused"
        + (f" ({record.reason})" if record.reason else "")
    )
