"""Who ran a validation, and what it found, for whoever asked for it.

`state/validation_results.json` records `details.by` (what ran it) and `details.attempt` (its
number within that): the validate task's run is attempt 0, the fix task's repair rounds 1, 2, …,
an LLM fix session's own runs 1, 2, … and its final check, and `llm_fix_reverted` the run on the
files as they were before that session when its repairs failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from trace2eval.sessions.session import Session

ValidatedBy = Literal["validate", "fix", "llm_fix", "llm_fix_reverted"]


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
        validation = session.validation() or {}
        return cls(validation.get("validation_status"), list(validation.get("problems", [])),
                   dict(validation.get("metrics", {})))


# Runs the real validation again (run_eval.py and its checks) and says what it found. The fix
# task's LLM session gets one from the runner instead of importing the validate task.
Revalidate = Callable[[ValidatedBy, int], ValidationOutcome]
