"""What a tool call can see and change: one session folder, read access to its experiment, and
the proposals staged in this LLM session (applied to the state only when the session ends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trace2eval.config import SessionConfig
from trace2eval.generate.scorers import ScorerSpec
from trace2eval.sessions.session import Session
from trace2eval.state.analysis import Analysis
from trace2eval.state.validation import Revalidate


class ToolError(Exception):
    """A refusal or a bad request the model can correct: sent back as an error tool result."""


@dataclass
class Staged:
    """Proposals that passed every check during this session, not yet written to the state."""

    profile: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # trace-backed rows and annotations
    edge_cases: list[dict[str, Any]] = field(default_factory=list)  # synthetic, need a predict_fn
    specs: list[ScorerSpec] = field(default_factory=list)  # new scorers (and replacements)
    replaces: dict[str, str] = field(default_factory=dict)  # new spec name -> the spec it replaces

    def is_empty(self) -> bool:
        return not (self.profile or self.rows or self.edge_cases or self.specs)


@dataclass
class ToolContext:
    session: Session
    config: SessionConfig
    task: str
    staged: Staged = field(default_factory=Staged)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # {"item", "name", "detail"}
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"item", "name", "reasons"}
    seen_traces: set[str] = field(default_factory=set)  # ids any tool showed the model
    finished: str | None = None  # the model's closing summary once it called `finish`
    # What the runner hands the session: why the deterministic fix failed, and how to validate again.
    failure: str | None = None
    revalidate: Revalidate | None = None
    # What tools leave for each other and for the end of the session.
    validations: int = 0  # run_validation calls so far
    validated: bool = False  # the last run_validation passed (and saw every applied change)
    applied_during_session: list[dict[str, Any]] = field(default_factory=list)  # what run_validation applied
    internal_errors: list[dict[str, Any]] = field(default_factory=list)  # {"tool", "error"}: bugs in a tool
    samples: list[dict[str, Any]] | None = None  # sample rows with their traces (submit.sample_rows), read once
    _findings_by_trace: dict[str, list[str]] | None = None
    _analysis: Analysis | None = None
    _client: Any = None

    def analysis(self) -> Analysis:
        if self._analysis is None:
            self._analysis = self.session.analysis()
        return self._analysis

    def findings_by_trace(self) -> dict[str, list[str]]:
        """trace id -> ids of the findings it is evidence of."""
        if self._findings_by_trace is None:
            index: dict[str, list[str]] = {}
            for f in self.analysis().findings:
                for tid in f.all_evidence or f.evidence:
                    index.setdefault(tid, []).append(f.id)
            self._findings_by_trace = index
        return self._findings_by_trace

    def mlflow_client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.config.tracking_uri)
        return self._client

    @property
    def scratch(self) -> Path:
        """The only folder tools write to besides the state files they own."""
        return self.session.state_dir / "llm_scratch" / self.task

    def refuse(self, item: str, name: str, reasons: list[str]) -> None:
        self.refused.append({"item": item, "name": name, "reasons": reasons[:6]})
        raise ToolError(f"refused {item} {name!r}: " + "; ".join(reasons[:6]))

    def accept(self, item: str, name: str, detail: str = "") -> None:
        self.accepted.append({"item": item, "name": name, "detail": detail[:300]})
