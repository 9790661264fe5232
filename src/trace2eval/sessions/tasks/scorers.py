"""Scorers: specs from the findings, rendered into scorers.py."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.generate.scorers import ScorerSpec, legacy_code_specs, render_scorers, specs_from_analysis
from trace2eval.llm import llm_step
from trace2eval.sessions import suite
from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session


def run(session: Session) -> dict[str, Any]:
    config = session.config()
    specs = specs_from_analysis(session.analysis())
    dropped: list[dict[str, Any]] = []
    if suite.is_nightly(session):  # the suite's scorers stay as they are; new findings add scorers
        specs, dropped = suite.merge_specs(session, specs)
    save_specs(session, specs, dropped=dropped)
    write_scorers(session, specs, config.judge_model)
    llm = llm_step(session, "scorers")
    if llm:  # the LLM may have added or rewritten scorers
        specs, _ = load_specs(session)
        llm["llm_scorers"] = sum(s.source == "llm" for s in specs)
    code = sum(s.is_code for s in specs)
    ui.say(f"Scorers: {code} code scorers, {len(specs) - code} LLM judges"
           + ("" if config.judge_model else " (judges not run: no --judge-model)"))
    return {"code_scorers": code, "judges": len(specs) - code, "judge_model": config.judge_model, **llm}


def save_specs(session: Session, specs: list[ScorerSpec], dropped: list[dict[str, Any]]) -> None:
    write_json(session.scorer_specs_file, {"scorers": [s.to_dict() for s in specs], "dropped": dropped})


def load_specs(session: Session) -> tuple[list[ScorerSpec], list[dict[str, Any]]]:
    data = read_json(session.scorer_specs_file)
    specs, legacy = legacy_code_specs([ScorerSpec.from_dict(s) for s in data["scorers"]])
    return specs, list(data.get("dropped", [])) + legacy


def write_scorers(session: Session, specs: list[ScorerSpec], judge_model: str | None) -> None:
    write_generated(session.dir, "evaluation/scorers.py", render_scorers(specs, judge_model), "scorers")
