"""Judge one evaluation run: did the suite really work?"""

from __future__ import annotations

import math
from typing import Any

from trace2eval.validate.run import EvalRun


def validation_checks(run: EvalRun, run_exists: bool, expected_scorers: list[str]) -> dict[str, Any]:
    """Named boolean checks plus the problems that explain any False."""
    results = run.results
    metrics = results.get("metrics", {})
    counts: dict[str, dict[str, Any]] = results.get("scorers", {})
    means = {k: v for k, v in metrics.items() if k.endswith("/mean")}
    # run_eval.py names the scorers that produced no value for most rows (it exits 2 for them):
    # one problem each, with their first error and how many rows got a value.
    failed = {f["scorer"]: f for f in results.get("scorer_failures", []) if isinstance(f, dict) and f.get("scorer")}
    errored = {name: c for name, c in counts.items() if c.get("errors") and name not in failed}
    missing_values = {
        name: c for name, c in counts.items() if c.get("values", 0) < c.get("rows", 0) and name not in failed
    }
    nan = sorted(k for k, v in means.items() if v is None or (isinstance(v, float) and math.isnan(v)))
    absent = sorted(n for n in expected_scorers if n not in counts and n not in failed)
    evaluated = bool(results.get("run_id"))
    early = results.get("error") if isinstance(results.get("error"), dict) else None

    checks = {
        "script_executes": run.exit_code in (0, 1, 2) and not run.timed_out and evaluated,
        "exit_code_zero": run.exit_code == 0,
        "mlflow_run_logged": run_exists,
        "metrics_logged": bool(means),
        "all_scorers_ran": evaluated and not absent,
        "all_scorers_returned_values": evaluated and not failed and not errored and not missing_values,
        "no_nan_scores": not nan,
        "no_gate_regressions": not results.get("regressions"),
    }
    problems: list[dict[str, Any]] = []
    if run.timed_out:
        problems.append({"kind": "timeout", "detail": f"run_eval.py did not finish in time ({run.seconds} s)"})
    elif early:  # run_eval.py stopped before evaluating, and said why (a judge that does not answer)
        problems.append(
            {
                k: v
                for k, v in {
                    "kind": early.get("kind", "crash"),
                    "scorer": early.get("scorer"),
                    "detail": early.get("detail") or _tail(run),
                }.items()
                if v is not None
            }
        )
    elif not evaluated:
        problems.append({"kind": "crash", "detail": _tail(run)})
    if evaluated and not run_exists:
        problems.append(
            {
                "kind": "run_not_logged",
                "detail": f"run {results.get('run_id')} has no */mean metrics in the tracking store",
            }
        )
    if evaluated:
        for name, f in failed.items():
            # The kinds fix already knows: an error, or no value and no error (it returned nothing).
            problems.append(
                {
                    "kind": "scorer_error" if f.get("first_error") else "scorer_no_value",
                    "scorer": name,
                    "rows": f.get("rows"),
                    "values": f.get("values"),
                    "most_rows": True,
                    "detail": f"a value for only {f.get('values')} of {f.get('rows')} rows; first error: "
                    f"{f.get('first_error') or 'none recorded (it returned nothing)'}",
                }
            )
    for name, c in errored.items():
        problems.append({"kind": "scorer_error", "scorer": name, "detail": c.get("first_error"), "rows": c["errors"]})
    for name, c in missing_values.items():
        if name not in errored:
            problems.append(
                {"kind": "scorer_no_value", "scorer": name, "detail": f"{c['values']}/{c['rows']} rows scored"}
            )
    for name in nan:
        problems.append({"kind": "nan_metric", "metric": name})
    if evaluated:
        for name in absent:
            problems.append({"kind": "scorer_missing", "scorer": name})
    for reg in results.get("regressions", []):
        problems.append({"kind": "gate_regression", "metric": reg[0], "gate": reg[1], "value": reg[2]})
    if run.exit_code not in (0, None) and not problems:
        problems.append({"kind": "nonzero_exit", "detail": _tail(run)})
    return {"checks": checks, "problems": problems}


def _tail(run: EvalRun) -> str:
    return (run.stderr_tail or run.stdout_tail)[-1500:]
