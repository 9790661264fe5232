"""The evaluation dataset as a typed, versioned model (`evaluation/eval_dataset.json`), and its writer.

A row is `{"inputs", "outputs", "expectations"?, "metadata"}`: what `mlflow.genai.evaluate` takes once
`metadata` is dropped. The file is checked once when it is read (`load_dataset`); rows a person
added or edited keep every field they have (`extra="allow"`), and files written before the version
field existed (version 1, no `version` key) load as they are.

A conversation is evaluated as its turns: one row per turn, each with the turn's own trace, and
`metadata.session` naming the conversation (MLflow's `mlflow.trace.session`), `metadata.turn` its
place in it. Session-level scorers see the turns of one session together.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trace2eval.errors import SessionError
from trace2eval.generate.script import render_eval_dataset
from trace2eval.sessions.files import dumps_json, read_json
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session

DATASET_VERSION = 1

CaseType = Literal["failure", "counter_example", "query_type", "edge", "baseline", "sample"]


class RowMetadata(BaseModel):
    """What trace2eval records about a row; all optional (a hand-written row may carry none)."""

    model_config = ConfigDict(extra="allow")  # near_duplicates, added_in, pinned, a person's own keys
    source_trace: str | None = None
    case_type: str | None = None  # a CaseType when trace2eval drew the row; free text from a person
    reasons: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)
    status: str | None = None
    duration_ms: float | None = None
    query_type: str | None = None
    session: str | None = None  # the conversation (mlflow.trace.session) this turn belongs to
    turn: int | None = Field(default=None, ge=1)  # 1-based place of the turn in its conversation
    turns: int | None = Field(default=None, ge=1)  # turns of the conversation in the dataset
    pinned: Any = None
    source: str | None = None
    expectations_source: str | None = None
    # What production did on this trace that a next version should keep (tools it called successfully,
    # its state changes, its writes without a go-ahead): read by the regression scorers. Older files
    # have none; run_eval.py then reads it from the source trace when that still exists.
    production_baseline: dict[str, Any] | None = None


class DatasetRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    inputs: dict[str, Any]
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    metadata: RowMetadata = Field(default_factory=RowMetadata)


class EvalDataset(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int = DATASET_VERSION
    rows: list[DatasetRow]
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    findings_covered: list[str] = Field(default_factory=list)

    @property
    def sessions(self) -> dict[str, list[DatasetRow]]:
        """Conversation rows by session, in turn order."""
        found: dict[str, list[DatasetRow]] = {}
        for row in self.rows:
            if row.metadata.session:
                found.setdefault(row.metadata.session, []).append(row)
        return {s: sorted(rs, key=lambda r: r.metadata.turn or 0) for s, rs in found.items()}


def parse_dataset(data: Any, where: str = "eval_dataset.json") -> EvalDataset:
    """The file's content checked against the model, or a SessionError naming the first problem."""
    if isinstance(data, dict):
        version = data.get("version", 1)
        if isinstance(version, int) and version > DATASET_VERSION:
            raise SessionError(
                f"{where} was written by a newer trace2eval (version {version}; this one reads up to "
                f"{DATASET_VERSION})",
                "upgrade trace2eval (pip install -U trace2eval) where this task runs",
            )
    try:
        return EvalDataset.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "/".join(str(p) for p in first["loc"])
        raise SessionError(
            f"{where} is not a valid dataset ({loc}: {first['msg']})",
            "fix that row (each row needs an `inputs` object), or rerun the dataset task",
        ) from None


def load_dataset(session: Session) -> EvalDataset:
    return parse_dataset(read_json(session.dataset_json), str(session.dataset_json))


def write_dataset(
    session: Session, rows: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None, merged: bool = False
) -> None:
    """`merged=True`: the rows start from the file's current rows, so a person's edits are in them.

    The rows are written as given (a person's fields and key order kept) once they pass the model.
    """
    covered = sorted({f for r in rows for f in (_metadata(r).get("findings") or []) if isinstance(f, str)})
    data = {"version": DATASET_VERSION, "rows": rows, "skipped": skipped or [], "findings_covered": covered}
    parsed = parse_dataset(data)
    write_generated(session.dir, "evaluation/eval_dataset.json", dumps_json(data) + "\n", "dataset", merged=merged)
    conversations = len(parsed.sessions)
    summary = f"{len(rows)} rows from production traces; findings covered: {len(covered)}." + (
        f" {sum(len(v) for v in parsed.sessions.values())} rows are the turns of {conversations} conversation(s)"
        " (metadata.session)."
        if conversations
        else ""
    )
    write_generated(session.dir, "evaluation/eval_dataset.py", render_eval_dataset(summary), "dataset")


def is_curated(row: dict[str, Any]) -> bool:
    """A row someone invested in, which no automatic repair or size limit may drop.

    Pinned rows (`metadata.pinned`), rows with expectations (a person's or an LLM's), rows an LLM
    proposed, and rows trace2eval did not draw itself (a person wrote them: no source trace or
    case type). Only rows drawn automatically from traces may be shed.
    """
    metadata = _metadata(row)
    return bool(
        row.get("expectations")
        or metadata.get("pinned")
        or metadata.get("source") == "llm"
        or metadata.get("expectations_source")
        or not metadata.get("source_trace")
        or not metadata.get("case_type")
    )


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"] if isinstance(row.get("metadata"), dict) else {}
