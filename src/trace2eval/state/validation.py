"""`state/validation_results.json` as a typed model, and who ran a validation.

`ValidationResult` is validated once when the file is read (`Session.validation()`); `.passed` is
the one way to ask whether validation passed. Problems have a `kind` from a fixed list (the fix
task and the report match on it).

`state/validation_results.json` records `details.by` (what ran it) and `details.attempt` (its
number within that): the validate task's run is attempt 0, the fix task's repair rounds 1, 2, …,
an LLM fix session's own runs 1, 2, … and its final check, and `llm_fix_reverted` the run on the
files as they were before that session when its repairs failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from trace2eval.sessions.session import Session

ValidatedBy = Literal["validate", "fix", "llm_fix", "llm_fix_reverted"]
ProblemKind = Literal[
    "crash",
    "nonzero_exit",
    "timeout",
    "no_rows",
    "run_not_logged",  # the run itself
    "scorer_error",
    "scorer_no_value",
    "scorer_missing",
    "nan_metric",  # one scorer
    "judge_unavailable",
    "judge_model_missing",  # configuration: no repair of the suite fixes these
    "gate_regression",
]
VALIDATION_VERSION = 1


class Problem(BaseModel):
    """One thing validation found wrong; extra fields (rows, gate, value, ...) say more."""

    model_config = ConfigDict(extra="allow")
    kind: ProblemKind
    scorer: str | None = None
    metric: str | None = None
    detail: Any = None


class ValidationResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int = Field(default=VALIDATION_VERSION, le=VALIDATION_VERSION)
    validation_status: Literal["passed", "failed"]
    run_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    validation_checks: dict[str, bool] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)
    gate_status: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.validation_status == "passed"

    def problem_list(self) -> list[dict[str, Any]]:
        """The problems as plain data (for messages, tools and the report)."""
        return [p.model_dump(exclude_none=True) for p in self.problems]


@dataclass(frozen=True)
class ValidationOutcome:
    status: str | None  # "passed" | "failed"; None when no validation ran
    problems: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @classmethod
    def of(cls, session: Session) -> ValidationOutcome:
        """The session's latest validation results."""
        validation = session.validation()
        if validation is None:
            return cls(None)
        return cls(validation.validation_status, validation.problem_list(), dict(validation.metrics))


# Runs the real validation again (run_eval.py and its checks) and says what it found. The fix
# task's LLM session gets one from the runner instead of importing the validate task.
Revalidate = Callable[[ValidatedBy, int], ValidationOutcome]
