"""The scorers as data (`state/scorer_specs.json`) and the `evaluation/scorers.py` rendered from them."""

from __future__ import annotations

from typing import Any

from trace2eval.generate.scorers import ScorerSpec, legacy_code_specs, render_scorers
from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session
from trace2eval.state.versions import SPECS_VERSION, upgrade_specs


def save_specs(session: Session, specs: list[ScorerSpec], dropped: list[dict[str, Any]]) -> None:
    write_json(
        session.scorer_specs_file,
        {"version": SPECS_VERSION, "scorers": [s.to_dict() for s in specs], "dropped": dropped},
    )


def load_specs(session: Session) -> tuple[list[ScorerSpec], list[dict[str, Any]]]:
    data = upgrade_specs(read_json(session.scorer_specs_file))
    specs, legacy = legacy_code_specs([ScorerSpec.from_dict(s) for s in data["scorers"]])
    return specs, list(data.get("dropped", [])) + legacy


def write_scorers(session: Session, specs: list[ScorerSpec], judge_model: str | None) -> None:
    write_generated(session.dir, "evaluation/scorers.py", render_scorers(specs, judge_model), "scorers")
