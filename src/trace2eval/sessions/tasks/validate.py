"""Validate: run run_eval.py for real, then check the run, the metrics and every scorer's values."""

from __future__ import annotations

from typing import Any

from trace2eval import ui
from trace2eval.sessions import ownership
from trace2eval.sessions.files import write_json
from trace2eval.sessions.plan import now
from trace2eval.sessions.session import Session
from trace2eval.state.specs import load_specs
from trace2eval.state.validation import VALIDATION_VERSION, ValidatedBy, ValidationResult
from trace2eval.validate.checks import validation_checks
from trace2eval.validate.run import run_eval_script, settle_validation_assessments

# Checks that say the suite works; the others (gates) report on the agent, not the suite.
REQUIRED = (
    "script_executes",
    "mlflow_run_logged",
    "metrics_logged",
    "all_scorers_ran",
    "all_scorers_returned_values",
    "no_nan_scores",
)


def run(session: Session, attempt: int = 0, by: ValidatedBy = "validate") -> dict[str, Any]:
    config = session.config()
    gates = session.evaluation_dir / "eval_gates.json"
    had_gates = gates.exists()
    # Explicit settings: an inherited MLFLOW_TRACKING_URI (notebooks set one) must not redirect the
    # run. A URI with a password goes through the child's environment, never its argv (which any
    # user of the host can read in the process list).
    args = ["--experiment-id", config.experiment_id]
    env: dict[str, str] = {}
    if config.shown_tracking_uri != config.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = config.tracking_uri
    else:
        args = ["--tracking-uri", config.tracking_uri, *args]
    # The judges as configured, said explicitly: an inherited TRACE2EVAL_JUDGE_MODEL must not add
    # them, and without a model they are left out on purpose, not by accident.
    args += ["--judge-model", config.judge_model] if config.judge_model else ["--no-judges"]
    with ui.activity("Validating: running evaluation/run_eval.py", unit="rows") as progress:
        result = run_eval_script(
            session.evaluation_dir,
            session.state_dir / "last_eval_results.json",
            config.validate_timeout_s,
            args,
            env=env,
            on_progress=progress.update,
            judge_model=config.judge_model,
            tracking_uri=config.tracking_uri,
        )
    run_id = result.results.get("run_id")
    settled = _settle(config.tracking_uri, config.experiment_id, run_id)
    specs, _ = load_specs(session)
    expected = [s.name for s in specs if s.is_code] + (
        [s.name for s in specs if not s.is_code] if result.results.get("judges_run") else []
    )
    if ownership.is_edited(session.dir, "evaluation/scorers.py"):
        # A person's scorers.py decides which scorers exist; each must still return values.
        expected = list(result.results.get("scorers", {}))
    judged = validation_checks(result, _run_logged(config.tracking_uri, run_id), expected)
    passed = all(judged["checks"][name] for name in REQUIRED)
    if not passed and not had_gates:
        gates.unlink(missing_ok=True)  # a baseline only comes from a validated run
    status = "passed" if passed else "failed"
    validation = {
        "version": VALIDATION_VERSION,
        "validation_status": status,
        "run_id": run_id,
        "metrics": result.results.get("metrics", {}),
        "validation_checks": judged["checks"],
        "problems": judged["problems"],
        "gate_status": "regressed" if result.results.get("regressions") else "ok",
        "details": {
            "by": by,
            "attempt": attempt,
            "validated_at": now(),
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "seconds": result.seconds,
            "rows": result.results.get("rows"),
            "rows_with_trace": result.results.get("rows_with_trace"),
            "judges_run": result.results.get("judges_run", False),
            "judges_note": None
            if config.judge_model
            else "LLM judges generated but not run: no judge model configured",
            # Rows whose production trace is gone (retention): evaluated from their stored inputs/outputs.
            "missing_source_traces": result.results.get("missing_source_traces", []),
            "scorers": result.results.get("scorers", {}),
            # This run's verdicts replaced the ones earlier validations left on the production traces.
            "validation_assessments": settled,
            "stdout_tail": result.stdout_tail[-2000:],
            "stderr_tail": result.stderr_tail[-2000:] if not passed else "",
        },
    }
    ValidationResult.model_validate(validation)  # what every reader will expect: a bug here, not there
    write_json(session.validation_file, validation)
    if passed:
        ui.say(f"Validation passed: run {run_id}, {len(validation['metrics'])} metrics in {result.seconds:.0f} s")
    else:
        ui.say(
            f"Validation failed: {', '.join(p['kind'] for p in judged['problems']) or 'see state/validation_results.json'}"
        )
    return {
        "validation_status": status,
        "run_id": run_id,
        "problems": len(judged["problems"]),
        "seconds": result.seconds,
    }


def _settle(tracking_uri: str, experiment_id: str, run_id: str | None) -> dict[str, Any]:
    if not run_id:
        return {}
    try:
        return settle_validation_assessments(tracking_uri, experiment_id, run_id)
    except Exception as exc:  # the verdicts stay where evaluate() put them: untidy, not wrong
        ui.warn(f"could not tidy the earlier validations' assessments: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def _run_logged(tracking_uri: str, run_id: str | None) -> bool:
    if not run_id:
        return False
    from mlflow import MlflowClient

    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except Exception:
        return False
    return any(k.endswith("/mean") for k in run.data.metrics)
