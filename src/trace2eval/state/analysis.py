"""`state/analysis.json` as a typed model: what every reader of the analysis may rely on.

The analysis is checked once when it is read (`Session.analysis()`, after the version upgrade in
`state/versions.py`) and handed to its readers as this model: findings carry their id, check,
severity, parameters, prevalence and evidence, query types their name, count and evidence, the case
index each cited trace's query type, with the types below. Sections only displayed stay free-form
(`extra="allow"`); code that takes the plain dict (generate/, which must not import state/) gets
`model_dump()`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Prevalence(BaseModel):
    traces: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)


class Finding(BaseModel):
    model_config = ConfigDict(extra="allow")  # agreement, kept, kept_reason after --labels
    id: str
    check: str
    title: str
    severity: Literal["high", "medium", "low"]
    scorer: Literal["code", "judge"] = "code"
    params: dict[str, Any] = Field(default_factory=dict)
    threshold_rationale: str
    description: str
    prevalence: Prevalence
    evidence: list[str] = Field(default_factory=list)
    all_evidence: list[str] = Field(default_factory=list)
    counter_examples: list[str] = Field(default_factory=list)


class Guard(BaseModel):
    """A failure check that applies to the traces and that none of them fails yet (`build_findings`)."""

    model_config = ConfigDict(extra="allow")
    id: str
    check: str
    title: str
    severity: Literal["high", "medium", "low"]
    params: dict[str, Any] = Field(default_factory=dict)
    threshold_rationale: str
    description: str
    checked: int = Field(ge=0)  # the traces (or conversations) it passed


class QueryType(BaseModel):
    model_config = ConfigDict(extra="allow")  # terms, error_rate, latency, findings, examples: displayed
    name: str
    count: int = Field(ge=0)
    evidence: list[str] = Field(default_factory=list)


class CaseFacts(BaseModel):
    """Short facts about one trace the analysis cites (`case_index`)."""

    model_config = ConfigDict(extra="allow")  # session, for a turn of a conversation
    query_type: str | None = None
    status: str | None = None
    duration_ms: float | None = None
    request: str = ""


class Analysis(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    findings: list[Finding] = Field(default_factory=list)
    guards: list[Guard] = Field(default_factory=list)  # absent before guards existed: none
    query_types: list[QueryType] = Field(default_factory=list)
    samples: dict[str, list[str]] = Field(default_factory=dict)
    case_index: dict[str, CaseFacts] = Field(default_factory=dict)

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def query_type(self, name: str) -> QueryType | None:
        return next((q for q in self.query_types if q.name == name), None)
