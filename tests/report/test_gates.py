"""The regression gate in the generated run_eval.py: its functions directly, then the script itself."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def run_eval(session_copy):
    """The session's rendered run_eval.py, imported as a module (its own imports resolve from its folder)."""
    path = session_copy.evaluation_dir / "run_eval.py"
    spec = importlib.util.spec_from_file_location("t2e_run_eval_under_test", path)
    module = importlib.util.module_from_spec(spec)
    saved = {k: sys.modules.get(k) for k in ("eval_dataset", "scorers")}
    for k in saved:
        sys.modules.pop(k, None)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        if str(session_copy.evaluation_dir) in sys.path:
            sys.path.remove(str(session_copy.evaluation_dir))


def verdicts(results):
    return {r["metric"]: r["verdict"] for r in results}


def test_gate_verdicts(run_eval):
    spec = {
        "tolerance": 0.05,
        "gates": {
            "a/mean": 0.8,  # plain floor
            "b/mean": {"min": 0.8, "tolerance": 0.0},  # strict
            "c/mean": {"max": 0.2},  # lower is better
            "judge/mean": 0.9,  # a judge that did not run
            "gone/mean": 0.9,  # a scorer that ran but gave no value
            "up/mean": 0.5,
        },
    }
    metrics = {"a/mean": 0.76, "b/mean": 0.79, "c/mean": 0.3, "gone/mean": float("nan"), "up/mean": 0.9}
    results = run_eval.check_gates(metrics, spec, {"a", "b", "c", "gone", "up"})
    assert verdicts(results) == {
        "a/mean": "ok",
        "b/mean": "REGRESSED",
        "c/mean": "REGRESSED",
        "judge/mean": "not run",
        "gone/mean": "REGRESSED",
        "up/mean": "improved",
    }


def test_update_keeps_what_a_person_set(run_eval, tmp_path):
    path = tmp_path / "eval_gates.json"
    previous = {
        "tolerance": 0.02,
        "gates": {"a/mean": {"min": 0.5, "tolerance": 0.0}, "judge/mean": 0.9, "b/mean": 0.1},
    }
    run_eval.write_gates(
        {"a/mean": 0.7, "b/mean": 0.6, "nan/mean": float("nan"), "b/max": 1.0}, path, "run1", 10, previous
    )
    written = json.loads(path.read_text())
    assert written["tolerance"] == 0.02 and written["baseline"]["run_id"] == "run1"
    assert written["gates"] == {"a/mean": {"min": 0.7, "tolerance": 0.0}, "b/mean": 0.6, "judge/mean": 0.9}
    assert "--update-gates" in written["_help"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', 'must be an object with a "gates" object'),
    ],
)
def test_unreadable_gates_file(run_eval, tmp_path, content, message):
    path = tmp_path / "eval_gates.json"
    path.write_text(content)
    with pytest.raises(run_eval.GateFileError, match=message):
        run_eval.read_gates(path)


def test_bad_gate_entry_is_named(run_eval):
    with pytest.raises(run_eval.GateFileError, match="gate 'x/mean'"):
        run_eval.check_gates({}, {"gates": {"x/mean": "high"}}, set())


@pytest.mark.slow
def test_regression_makes_run_eval_exit_1(session_copy):
    folder = session_copy.evaluation_dir
    config = session_copy.config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}

    def run(*args):
        return subprocess.run(
            [
                sys.executable,
                "run_eval.py",
                "--tracking-uri",
                config.tracking_uri,
                "--experiment-id",
                config.experiment_id,
                *args,
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )

    gates_file = folder / "eval_gates.json"
    gates = json.loads(gates_file.read_text())
    metric = sorted(k for k, v in gates["gates"].items() if v < 0.95)[0]
    gates["gates"][metric] = {"min": 1.0, "tolerance": 0.0}
    gates["gates"]["safety/mean"] = 0.99  # a judge gate: not run offline, so not a regression
    gates_file.write_text(json.dumps(gates))

    regressed = run()
    assert regressed.returncode == 1, regressed.stderr[-2000:]
    out = regressed.stdout
    assert "Quality gate FAILED: 1 of" in out and "--update-gates" in out
    line = next(l for l in out.splitlines() if l.startswith(metric))
    assert ">= 1.000" in line and line.endswith("REGRESSED")
    assert next(l for l in out.splitlines() if l.startswith("safety/mean")).endswith("not run")

    accepted = run("--update-gates")
    assert accepted.returncode == 0 and "Gates updated" in accepted.stdout, accepted.stdout[-3000:]
    kept = json.loads(gates_file.read_text())["gates"]
    assert kept[metric]["tolerance"] == 0.0 and kept[metric]["min"] < 1.0 and kept["safety/mean"] == 0.99
    accepted_spec = json.loads(gates_file.read_text())
    accepted_spec["baseline"]["rows"] = 999  # as if the dataset had shrunk since the baseline
    gates_file.write_text(json.dumps(accepted_spec))
    again = run()
    assert again.returncode == 0 and "Quality gates passed" in again.stdout, again.stdout[-3000:]
    assert "the gates come from a run on 999 rows" in again.stdout

    gates_file.write_text("{broken")
    broken = run()
    assert broken.returncode == 2
    assert "Error: eval_gates.json is not valid JSON" in broken.stderr and "Evaluating" not in broken.stdout


def test_a_value_equal_to_its_rounded_gate_is_no_regression(run_eval):
    """Gates are written to 4 decimals: 20/22 is stored as 0.9091, above the very value it came from."""
    [result] = run_eval.check_gates(
        {"a/mean": 20 / 22}, {"gates": {"a/mean": {"min": 0.9091, "tolerance": 0.0}}}, {"a"}
    )
    assert result["verdict"] == "ok"
    [lower] = run_eval.check_gates({"a/mean": 19 / 22}, {"gates": {"a/mean": {"min": 0.9091, "tolerance": 0.0}}}, {"a"})
    assert lower["verdict"] == "REGRESSED"
