"""The task plan, `eval_tasks.json`: which tasks a session has and where each one stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

TaskName = Literal["initializer", "dataset", "scorers", "script", "validate", "fix"]
TaskStatus = Literal["pending", "running", "completed", "failed", "skipped"]


@dataclass(frozen=True)
class TaskDef:
    """One task of a session: what the runner, the plan, the bundle and the LLM layer know of it."""

    name: TaskName
    needs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str
    refinable: bool = False  # an LLM session may refine its deterministic output
    validates: bool = False  # it ends in a validation: a passing one publishes a nightly suite
    after_failed_validation: bool = False  # skipped once validation passed (the bundle's condition task)


# The tasks in the order they run (the module `trace2eval.sessions.tasks.<name>` runs each one).
TASKS: tuple[TaskDef, ...] = (
    TaskDef(
        "initializer",
        (),
        ("state/analysis.json", "eval_tasks.json"),
        "Analyze traces, write state/analysis.json and this plan",
        refinable=True,
    ),
    TaskDef(
        "dataset",
        ("initializer",),
        ("evaluation/eval_dataset.json", "evaluation/eval_dataset.py"),
        "Build the evaluation dataset from production traces (evaluation/eval_dataset.py)",
        refinable=True,
    ),
    TaskDef(
        "scorers",
        ("dataset",),
        ("state/scorer_specs.json", "evaluation/scorers.py"),
        "Create code scorers and LLM judges for the findings (evaluation/scorers.py)",
        refinable=True,
    ),
    TaskDef(
        "script",
        ("dataset", "scorers"),
        ("evaluation/run_eval.py",),
        "Generate evaluation/run_eval.py around mlflow.genai.evaluate()",
    ),
    TaskDef(
        "validate",
        ("script",),
        ("state/validation_results.json",),
        "Run run_eval.py and check every scorer produced a value for every row",
        validates=True,
    ),
    TaskDef(
        "fix",
        ("validate",),
        ("state/validation_results.json",),
        "Repair what failed validation and validate again (runs only if validation failed)",
        refinable=True,
        validates=True,
        after_failed_validation=True,
    ),
)
TASK: dict[str, TaskDef] = {t.name: t for t in TASKS}
TASK_ORDER: list[str] = [t.name for t in TASKS]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TaskRecord(BaseModel):
    name: str
    description: str
    status: TaskStatus = "pending"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    outputs: list[str] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)


class TaskPlan(BaseModel):
    session_id: str
    created_at: str
    experiment_id: str
    engine: str = "deterministic"
    tasks: list[TaskRecord]

    @classmethod
    def new(cls, session_id: str, experiment_id: str, engine: str) -> "TaskPlan":
        return cls(
            session_id=session_id,
            created_at=now(),
            experiment_id=experiment_id,
            engine=engine,
            tasks=[TaskRecord(name=t.name, description=t.description, outputs=list(t.outputs)) for t in TASKS],
        )

    def task(self, name: str) -> TaskRecord:
        for record in self.tasks:
            if record.name == name:
                return record
        raise KeyError(name)

    def next_pending(self) -> TaskRecord | None:
        for record in self.tasks:
            if record.status not in ("completed", "skipped"):
                return record
        return None

    @property
    def finished(self) -> bool:
        return self.next_pending() is None
