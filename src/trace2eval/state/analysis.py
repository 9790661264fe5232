"""`state/analysis.json` as a typed model: what every reader of the analysis may rely on.

The analysis is checked once when it is read (`Session.analysis()`, after the version upgrade in
`state/versions.py`): findings carry their id, check, severity, parameters, prevalence and evidence
with the types below. Sections the report only displays stay free-form (`extra="allow"`).
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


class Analysis(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    findings: list[Finding] = Field(default_factory=list)
    query_types: list[dict[str, Any]] = Field(default_factory=list)
    samples: dict[str, list[str]] = Field(default_factory=dict)
    case_index: dict[str, dict[str, Any]] = Field(default_factory=dict)
