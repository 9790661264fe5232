"""The task plan, `eval_tasks.json`: which tasks a session has and where each one stands."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

TaskName = Literal["initializer", "dataset", "scorers", "script", "validate", "fix"]
TaskStatus = Literal["pending", "running", "completed", "failed", "skipped"]

TASK_ORDER: list[str] = ["initializer", "dataset", "scorers", "script", "validate", "fix"]
NEEDS: dict[str, list[str]] = {
    "initializer": [],
    "dataset": ["initializer"],
    "scorers": ["dataset"],
    "script": ["dataset", "scorers"],
    "validate": ["script"],
    "fix": ["validate"],
}
DESCRIPTIONS = {
    "initializer": "Analyze traces, write state/analysis.json and this plan",
    "dataset": "Build the evaluation dataset from production traces (evaluation/eval_dataset.py)",
    "scorers": "Create code scorers and LLM judges for the findings (evaluation/scorers.py)",
    "script": "Generate evaluation/run_eval.py around mlflow.genai.evaluate()",
    "validate": "Run run_eval.py and check every scorer produced a value for every row",
    "fix": "Repair what failed validation and validate again (runs only if validation failed)",
}
OUTPUTS = {
    "initializer": ["state/analysis.json", "eval_tasks.json"],
    "dataset": ["evaluation/eval_dataset.json", "evaluation/eval_dataset.py"],
    "scorers": ["state/scorer_specs.json", "evaluation/scorers.py"],
    "script": ["evaluation/run_eval.py"],
    "validate": ["state/validation_results.json"],
    "fix": ["state/validation_results.json"],
}


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
            session_id=session_id, created_at=now(), experiment_id=experiment_id, engine=engine,
            tasks=[TaskRecord(name=n, description=DESCRIPTIONS[n], outputs=OUTPUTS[n]) for n in TASK_ORDER],
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
