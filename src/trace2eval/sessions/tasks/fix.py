"""Fix (deterministic): repair what validation found, validate again, a bounded number of times.

Repairs, least invasive first: drop a scorer that errored or gave no value (recording why);
re-render every generated file from its spec; drop scorers an LLM wrote; shed automatically drawn
dataset rows when the run timed out (curated rows never: see `dataset.is_curated`). If validation
still fails after the last attempt, the task fails with the reason.
"""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.errors import ValidationFailed
from trace2eval.sessions import ownership
from trace2eval.sessions.files import add_run_note, read_json, run_notes, write_json
from trace2eval.sessions.refinement import REFINE, Refinement
from trace2eval.sessions.session import Session
from trace2eval.sessions.suite import EVICTION_ORDER
from trace2eval.sessions.tasks import script as script_task
from trace2eval.sessions.tasks import validate as validate_task
from trace2eval.state.dataset import is_curated, write_dataset
from trace2eval.state.specs import load_specs, save_specs, write_scorers

FIX_LOG = "fix_log.json"
MIN_ROWS = 5  # a timeout never sheds below this many rows


def run(session: Session) -> dict[str, Any]:
    """Deterministic repairs first; then, with an LLM configured, the runner has an LLM fix session
    repair what they dropped (or, when they could not make the suite pass, try its own repair)."""
    try:
        summary = repair_and_validate(session)
    except ValidationFailed as failure:
        return {REFINE: Refinement(why="the deterministic repairs could not make validation pass", failure=failure)}
    dropped = any(c.startswith("dropped") for c in summary.get("changes") or [])
    return {
        **summary,
        REFINE: Refinement(why="the deterministic repairs dropped scorers") if dropped else Refinement.not_wanted(),
    }


def after_llm(session: Session, summary: dict[str, Any], refinement: Refinement) -> dict[str, Any]:
    """A suite the deterministic repairs could not fix counts as repaired only if it now validates."""
    if refinement.failure is None:
        return summary
    validation = session.validation()
    if validation and validation.passed:
        return {"repaired_by": "llm", **summary}
    raise refinement.failure


def repair_and_validate(session: Session) -> dict[str, Any]:
    config = session.config()
    validation = session.validation()
    if validation and validation.passed:
        return {"skipped": "validation passed"}
    problems = validation.problem_list() if validation else []
    refuse_to_repair_edited_files(session, problems)
    refuse_to_repair_configuration(problems)
    log: list[dict[str, Any]] = []
    for attempt in range(1, config.max_fix_attempts + 1):
        changes = repair(session, problems, attempt)
        log.append({"attempt": attempt, "changes": changes})
        write_json(session.state_dir / FIX_LOG, log)
        if not changes:
            break
        for change in changes:
            ui.say(f"Fix {attempt}: {change}")
        validate_task.run(session, attempt=attempt, by="fix")
        validation = session.validation()
        problems = validation.problem_list() if validation else []
        if validation and validation.passed:
            return {"attempts": attempt, "changes": [c for entry in log for c in entry["changes"]]}
        refuse_to_repair_edited_files(session, problems)  # a restored missing file may reveal an edited one
    listed = "; ".join(f"{p['kind']}{' ' + p['scorer'] if p.get('scorer') else ''}" for p in problems)
    raise ValidationFailed(
        f"validation still fails after {len(log)} fix attempt(s): {listed or 'unknown problem'}",
        "see state/validation_results.json and state/fix_log.json in the session folder",
    )


# Problems no change to the suite can fix: dropping judges one by one would only hide them.
CONFIGURATION_PROBLEMS = ("judge_unavailable", "judge_model_missing")


def refuse_to_repair_configuration(problems: list[dict[str, Any]]) -> None:
    found = [p for p in problems if p.get("kind") in CONFIGURATION_PROBLEMS]
    if found:
        detail = " ".join(str(found[0].get("detail") or found[0]["kind"]).split())[:400]
        raise ValidationFailed(
            f"the judges cannot run: {detail}",
            "check the judge model name and its credentials (or the secret scope on Databricks), "
            "or run without judges (no --judge-model)",
        )


def refuse_to_repair_edited_files(session: Session, problems: list[dict[str, Any]]) -> None:
    """Repairs rewrite generated files; one a person edited is theirs, so say so instead of looping."""
    code_files = ("evaluation/scorers.py", "evaluation/run_eval.py", "evaluation/eval_dataset.py")
    missing = [rel for rel in code_files if not (session.dir / rel).exists()]
    if missing and any(p["kind"] in ("crash", "nonzero_exit") for p in problems):
        # A deleted generated file explains the crash, not an edited neighbour: deleting one means
        # "take the generated version", and the repair re-renders it.
        ui.say(f"{', '.join(missing)} missing: rendering it again from its spec")
        return
    blame = []
    if ownership.is_edited(session.dir, "evaluation/scorers.py") and any(
        p.get("scorer") or p["kind"] == "nan_metric" for p in problems
    ):
        blame.append("evaluation/scorers.py")
    if any(p["kind"] in ("crash", "nonzero_exit", "timeout") for p in problems):  # any edited code file can cause these
        blame += [
            rel
            for rel in ("evaluation/scorers.py", "evaluation/run_eval.py", "evaluation/eval_dataset.py")
            if rel not in blame and ownership.is_edited(session.dir, rel)
        ]
    if blame:
        detail = "; ".join(
            f"{p['kind']}{' ' + p['scorer'] if p.get('scorer') else ''}: {' '.join(str(p.get('detail') or '').split())[-200:]}"
            for p in problems
        )
        home = session.config().suite_dir or str(session.dir)  # where the person edits: the suite, or this session
        raise ValidationFailed(
            f"validation fails and {', '.join(blame)} was edited by a person, so trace2eval does not repair it ({detail})",
            f"fix {' and '.join(f'{home}/{b}' for b in blame)} (the generated version is beside it as .new), "
            "or delete it to take the generated version; the next run (or `trace2eval task validate --force`) checks it again",
        )


def repair(session: Session, problems: list[dict[str, Any]], attempt: int) -> list[str]:
    config = session.config()
    specs, dropped = load_specs(session)
    changes: list[str] = []

    bad = {p["scorer"]: p for p in problems if p.get("scorer") and p["kind"] != "scorer_missing"}
    bad.update({p["metric"].split("/")[0]: p for p in problems if p["kind"] == "nan_metric"})
    if bad:
        keep = [s for s in specs if s.name not in bad]
        for name, problem in bad.items():
            dropped.append(
                {
                    "name": name,
                    "reason": f"{problem['kind']}: {str(problem.get('detail') or '')[:300]}",
                    "attempt": attempt,
                }
            )
            changes.append(f"dropped scorer {name} ({problem['kind']})")
        specs = keep

    structural = {p["kind"] for p in problems} & {"crash", "nonzero_exit", "scorer_missing", "timeout"}
    if structural:
        if attempt >= 2 and any(s.source != "deterministic" for s in specs):
            for s in specs:
                if s.source != "deterministic":
                    dropped.append(
                        {
                            "name": s.name,
                            "reason": "LLM-written scorer removed after repeated failures",
                            "attempt": attempt,
                        }
                    )
            specs = [s for s in specs if s.source == "deterministic"]
            changes.append("dropped LLM-written scorers")
        if "timeout" in structural:
            shed = shed_rows(session, attempt)
            if shed:
                changes.append(shed)
        else:
            data = read_json(session.dataset_json)
            write_dataset(session, data["rows"], data.get("skipped"), merged=True)
        script_task.run(session)
        changes.append("re-rendered eval_dataset.py, scorers.py and run_eval.py from their specs")

    if not [s for s in specs if s.is_code]:
        return []  # nothing left worth validating
    if changes:
        save_specs(session, specs, dropped)
        write_scorers(session, specs, config.judge_model)
    return changes


def shed_rows(session: Session, attempt: int) -> str | None:
    """After a timeout, halve the dataset by shedding automatically drawn rows only.

    Curated rows (pinned, with expectations, LLM-proposed, hand-written) always stay, even when that
    leaves nothing to shed (the suite then fails loudly rather than losing them). Rows this run added go first, then the least telling kinds (plain
    samples before failures). What was shed and why goes into the dataset's `skipped` list, the
    fix log and a run note that SUITE.md shows: in a living suite a shed row does not come back.
    """
    data = read_json(session.dataset_json)
    rows = data["rows"]
    target = max(MIN_ROWS, len(rows) // 2)
    sheddable = [i for i, row in enumerate(rows) if not is_curated(row)]
    if len(rows) <= target or not sheddable:
        return None

    def order(i: int) -> tuple:
        metadata = rows[i].get("metadata") or {}
        return (metadata.get("added_in") != session.id, EVICTION_ORDER.get(metadata.get("case_type"), 0), -i)

    drop = set(sorted(sheddable, key=order)[: len(rows) - target])
    reason = f"shed after run_eval.py timed out (fix attempt {attempt})"
    shed = [rows[i] for i in sorted(drop)]
    skipped = list(data.get("skipped") or []) + [
        {"trace_id": (r.get("metadata") or {}).get("source_trace"), "reason": reason} for r in shed
    ]
    kept = [r for i, r in enumerate(rows) if i not in drop]
    write_dataset(session, kept, skipped, merged=True)
    curated = sum(1 for r in kept if is_curated(r))
    summary = (
        f"shed {len(shed)} of {len(rows)} dataset rows drawn automatically (run_eval.py timed out); "
        f"kept {len(kept)}, all {curated} curated rows (pinned, with expectations, hand-written) among them"
    )
    _note_shed(session, shed, reason)
    return summary


def _note_shed(session: Session, shed: list[dict[str, Any]], reason: str) -> None:
    """One note for the run, counting every attempt's shedding."""
    previous = next((n for n in run_notes(session.state_dir) if n.get("topic") == "shed_rows"), {})
    traces = list(previous.get("traces") or []) + [
        {
            "trace_id": (r.get("metadata") or {}).get("source_trace"),
            "case_type": (r.get("metadata") or {}).get("case_type"),
            "reason": reason,
        }
        for r in shed
    ]
    text = (
        f"{len(traces)} automatically drawn dataset row(s) were shed because run_eval.py timed out "
        f"(after {session.config().validate_timeout_s} s); curated rows were all kept. Shed rows do not come back: "
        "pin the ones the suite needs, or lower max_suite_rows so validation finishes in time."
    )
    add_run_note(session.state_dir, "shed_rows", text, traces=traces)
