"""LLM sessions: Claude (Databricks Foundation Model API or Anthropic API) refines the suite.

The deterministic engine writes every artifact first; `refine(session, task)` then gives the model
tools and the mlflow-evaluation skill, validates everything it proposes, and keeps only what
passes. Modules: `clients` (endpoints and auth), `calls` (retries), `loop` (tool use), `tools/`,
`names` (scorer names), `samplerun` (code scorers on sample rows), `budget`, `ledger`, `tracing`, `prompts`,
`skills`, `apply`, `refine`.

Importing this package is cheap: the SDKs load only when a session actually runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["llm_step"]


def llm_step(session, task: str, **extra: Any) -> dict[str, Any]:
    """A task's LLM step, after its deterministic output is written; returns entries for the task's
    summary in eval_tasks.json ({} when no LLM is configured). Raises LLMUnavailable only with
    --require-llm."""
    if session.config().llm == "none":
        return {}
    from trace2eval.llm.refine import refine

    outcome = refine(session, task, extra or None)
    if outcome is None:
        return {}
    return {"llm": outcome.outcome, **({"llm_reason": outcome.reason[:300]} if outcome.reason else {})}
