"""Run `run_eval.py` in a subprocess with a timeout and collect what it reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_TAIL = 4000


@dataclass
class EvalRun:
    exit_code: int | None
    timed_out: bool
    seconds: float
    stdout_tail: str
    stderr_tail: str
    results: dict[str, Any] = field(default_factory=dict)


def run_eval_script(evaluation_dir: Path, results_path: Path, timeout_s: int, extra_args: list[str] | None = None,
                    env: dict[str, str] | None = None) -> EvalRun:
    """`python run_eval.py` from its own folder, as a user would run it."""
    results_path.unlink(missing_ok=True)
    cmd = [sys.executable, "run_eval.py", "--results-json", str(results_path), *(extra_args or [])]
    child_env = {**os.environ, **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=evaluation_dir, capture_output=True, text=True, timeout=timeout_s, env=child_env)
        code, out, err, timed_out = proc.returncode, proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        code, timed_out = None, True
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    results: dict[str, Any] = {}
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            results = {}
    return EvalRun(code, timed_out, round(time.monotonic() - start, 2), out[-OUTPUT_TAIL:], err[-OUTPUT_TAIL:], results)
