"""A session folder: where each state file lives, and reading/writing the plan and config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from trace2eval.config import SessionConfig
from trace2eval.errors import SessionError
from trace2eval.state.analysis import Analysis
from trace2eval.state.validation import ValidationResult
from trace2eval.state.versions import upgrade_analysis
from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.plan import TaskPlan


@dataclass(frozen=True)
class Session:
    dir: Path

    # -- paths -----------------------------------------------------------------------------
    @property
    def tasks_file(self) -> Path:
        return self.dir / "eval_tasks.json"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def evaluation_dir(self) -> Path:
        return self.dir / "evaluation"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "config.json"

    @property
    def analysis_file(self) -> Path:
        return self.state_dir / "analysis.json"

    @property
    def scorer_specs_file(self) -> Path:
        return self.state_dir / "scorer_specs.json"

    @property
    def validation_file(self) -> Path:
        return self.state_dir / "validation_results.json"

    @property
    def dataset_json(self) -> Path:
        return self.evaluation_dir / "eval_dataset.json"

    # -- state -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "Session":
        session = cls(Path(path).resolve())
        if not session.tasks_file.exists():
            raise SessionError(
                f"{session.dir} is not a trace2eval session (no eval_tasks.json)",
                "pass the folder `trace2eval run` printed, or create one with `trace2eval run`",
            )
        return session

    @property
    def id(self) -> str:
        return self.dir.name

    def config(self) -> SessionConfig:
        return SessionConfig.model_validate(read_json(self.config_file))

    def plan(self) -> TaskPlan:
        try:
            return TaskPlan.model_validate(read_json(self.tasks_file))
        except SessionError:
            raise
        except Exception as exc:
            raise SessionError(
                f"{self.tasks_file} is not a valid task plan: {exc}", "restore it from the Volume/backup"
            ) from None

    def save_plan(self, plan: TaskPlan) -> None:
        write_json(self.tasks_file, plan.model_dump(mode="json"))

    def analysis(self) -> Analysis:
        """analysis.json, its version checked and upgraded (state/versions.py), as the typed model."""
        data = upgrade_analysis(read_json(self.analysis_file))
        try:
            return Analysis.model_validate(data)
        except ValidationError as exc:
            where = "/".join(str(p) for p in exc.errors()[0]["loc"])
            raise SessionError(
                f"{self.analysis_file} is not a valid analysis ({where}: {exc.errors()[0]['msg']})",
                f"rerun the initializer: trace2eval task initializer --session {self.dir} --force",
            ) from None

    def validation(self) -> ValidationResult | None:
        """validation_results.json, validated once here (None before the first validation)."""
        if not self.validation_file.exists():
            return None
        try:
            return ValidationResult.model_validate(read_json(self.validation_file))
        except ValidationError as exc:
            raise SessionError(
                f"{self.validation_file} is not a valid validation result: {exc.errors()[0]['msg']}",
                f"rerun the validation: trace2eval task validate --session {self.dir} --force",
            ) from None
