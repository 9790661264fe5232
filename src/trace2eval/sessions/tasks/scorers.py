"""Scorers: specs from the findings, rendered into scorers.py."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.generate.scorers import specs_from_analysis
from trace2eval.sessions import suite
from trace2eval.sessions.refinement import Refinement
from trace2eval.sessions.session import Session
from trace2eval.state.specs import load_specs, save_specs, write_scorers


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    specs = specs_from_analysis(session.analysis().model_dump())
    dropped: list[dict[str, Any]] = []
    if suite.is_nightly(session):  # the suite's scorers stay as they are; new findings add scorers
        specs, dropped = suite.merge_specs(session, specs)
    save_specs(session, specs, dropped=dropped)
    write_scorers(session, specs, config.judge_model)
    code = sum(s.is_code for s in specs)
    ui.say(
        f"Scorers: {code} code scorers, {len(specs) - code} LLM judges"
        + ("" if config.judge_model else " (judges not run: no --judge-model)")
    )
    return {"code_scorers": code, "judges": len(specs) - code, "judge_model": config.judge_model}


def after_llm(session: Session, summary: dict[str, Any], refinement: Refinement) -> dict[str, Any]:
    """The LLM may have added or rewritten scorers: count what is on disk now."""
    specs, _ = load_specs(session)
    code = sum(s.is_code for s in specs)
    return {
        **summary,
        "code_scorers": code,
        "judges": len(specs) - code,
        "llm_scorers": sum(s.source == "llm" for s in specs),
    }
