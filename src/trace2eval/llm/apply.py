"""Write an LLM session's accepted proposals into the session's state and re-render the files.

Called once when a session ends (whatever ended it: accepted work is already validated), and by
the fix session's `run_validation` tool. The deterministic artifacts were written before the
session started; this only adds to them or swaps a scorer for its accepted rewrite.
"""

from __future__ import annotations

import json
from typing import Any

from trace2eval.generate.dataset import Case, build_rows
from trace2eval.llm.tools.context import Staged, ToolContext
from trace2eval.llm.tools.reading import PROFILE_FILE
from trace2eval.sessions.files import read_json, write_json, write_text
from trace2eval.sessions.ownership import write_generated
from trace2eval.sessions.session import Session
from trace2eval.state.dataset import write_dataset
from trace2eval.state.specs import load_specs, save_specs, write_scorers
from trace2eval.traces.source import fetch_trace

EDGE_CASES_FILE = "edge_cases.json"
EDGE_CASES_NOTE = (
    "Synthetic requests an LLM session proposed, with expectations. They have no recorded outputs, so "
    "run_eval.py does not evaluate them: pass them to mlflow.genai.evaluate(data=cases, predict_fn=<your agent>, "
    "scorers=...) to test a new version of the agent on them."
)


def apply_staged(ctx: ToolContext) -> dict[str, Any]:
    """Apply and clear `ctx.staged`; returns what changed (for the ledger and the model)."""
    staged, ctx.staged = ctx.staged, Staged()
    session = ctx.session
    applied: dict[str, Any] = {}
    if staged.profile:
        applied["agent_profile"] = _apply_profile(session, staged.profile)
    if staged.rows:
        applied["dataset"] = _apply_rows(ctx, staged.rows)
    if staged.edge_cases:
        applied["edge_cases"] = _apply_edge_cases(session, staged.edge_cases)
    if staged.specs:
        applied["scorers"] = _apply_specs(ctx, staged)
    return applied


def _apply_profile(session: Session, profile: dict[str, Any]) -> str:
    write_json(session.state_dir / PROFILE_FILE, {"source": "llm", **profile})
    notes = profile.get("plan_notes") or {}
    plan = session.plan()
    for task in ("dataset", "scorers"):
        note = (notes.get(task) or "").strip()
        if note and plan.task(task).status == "pending":
            base = plan.task(task).description.split(" — LLM plan: ")[0]
            plan.task(task).description = f"{base} — LLM plan: {note[:400]}"
    session.save_plan(plan)
    return profile["agent_name"]


def _apply_rows(ctx: ToolContext, staged_rows: list[dict[str, Any]]) -> dict[str, int]:
    session = ctx.session
    data = read_json(session.dataset_json)
    rows = data["rows"]
    by_trace = {r.get("metadata", {}).get("source_trace"): r for r in rows}
    annotated = 0
    new_cases, proposals = [], {}
    for proposal in staged_rows:
        tid = proposal["source_trace"]
        if tid in by_trace:
            if proposal.get("expectations"):
                row = by_trace[tid]
                row["expectations"] = {**(row.get("expectations") or {}), **proposal["expectations"]}
                row["metadata"]["expectations_source"] = "llm"
                row["metadata"].setdefault("reasons", []).append(f"LLM: {proposal['reason']}")
                annotated += 1
            continue
        proposals[tid] = proposal
        new_cases.append(Case(tid, reasons=[f"LLM: {proposal['reason']}"], case_type=f"llm_{proposal['case_type']}"))
    added: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    if new_cases:
        client = ctx.mlflow_client()
        case_index = ctx.analysis().model_dump()["case_index"]
        added, skipped = build_rows(new_cases, lambda tid: fetch_trace(client, tid), case_index)
        for row in added:
            proposal = proposals[row["metadata"]["source_trace"]]
            row["metadata"]["source"] = "llm"
            if proposal.get("expectations"):
                row["expectations"] = proposal["expectations"]
    # Built from the file's current rows, so a person's edits to them are kept.
    write_dataset(session, rows + added, (data.get("skipped") or []) + skipped, merged=True)
    return {"added": len(added), "annotated": annotated, "skipped": len(skipped)}


def _apply_edge_cases(session: Session, cases: list[dict[str, Any]]) -> int:
    path = session.evaluation_dir / EDGE_CASES_FILE
    existing = read_json(path).get("cases", []) if path.exists() else []
    rows = [
        {
            "inputs": c["inputs"],
            "expectations": c["expectations"],
            "metadata": {"reason": c["reason"], "variant_of": c.get("variant_of"), "source": "llm"},
        }
        for c in cases
    ]
    text = json.dumps({"note": EDGE_CASES_NOTE, "cases": existing + rows}, indent=2, ensure_ascii=False) + "\n"
    write_generated(session.dir, f"evaluation/{EDGE_CASES_FILE}", text, "dataset", merged=True)  # appended to its cases
    return len(rows)


def _apply_specs(ctx: ToolContext, staged: Staged) -> dict[str, Any]:
    session = ctx.session
    specs, dropped = load_specs(session)
    replaced = set(staged.replaces.values())
    new_names = {s.name for s in staged.specs}
    kept = [s for s in specs if s.name not in replaced and s.name not in new_names]
    final = kept + list(staged.specs)
    for old in sorted(replaced):
        if any(s.name == old for s in specs):
            dropped.append({"name": old, "reason": "replaced by an LLM rewrite", "attempt": 0})
        for entry in dropped:  # a scorer validation had dropped, now repaired under the same name
            if entry.get("name") == old and old in new_names:
                entry["repaired_by"] = "llm"
    save_specs(session, final, dropped)
    write_scorers(session, final, ctx.config.judge_model)
    return {"added": sorted(new_names - replaced), "replaced": sorted(replaced)}


# Files an LLM session may change: (path in the session, the task that generates it). Files under
# evaluation/ are written through the ownership manifest so a restore is not mistaken for an edit.
SNAPSHOT_FILES = (
    ("state/scorer_specs.json", None),
    ("evaluation/scorers.py", "scorers"),
    ("evaluation/eval_dataset.json", "dataset"),
    ("evaluation/eval_dataset.py", "dataset"),
)


def snapshot(session: Session) -> dict[str, str | None]:
    """The files an LLM session may change, to restore them if its changes fail validation."""
    return {
        rel: ((session.dir / rel).read_text(encoding="utf-8") if (session.dir / rel).exists() else None)
        for rel, _ in SNAPSHOT_FILES
    }


def restore(session: Session, snap: dict[str, str | None]) -> None:
    tasks = dict(SNAPSHOT_FILES)
    for rel, text in snap.items():
        if text is None:
            (session.dir / rel).unlink(missing_ok=True)
        elif tasks.get(rel):
            write_generated(session.dir, rel, text, tasks[rel])
        else:
            write_text(session.dir / rel, text)
