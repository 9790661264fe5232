"""Run `run_eval.py` in a subprocess with a timeout and collect what it reported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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


# MLflow's evaluate draws a tqdm bar on stderr ("Evaluating:  40%|####  | 16/40 [...]").
_ROW_PROGRESS = re.compile(r"Evaluating:.*?\|\s*(\d+)/(\d+)")

ProgressCallback = Callable[[int, int], None]


def run_eval_script(evaluation_dir: Path, results_path: Path, timeout_s: int, extra_args: list[str] | None = None,
                    env: dict[str, str] | None = None, on_progress: ProgressCallback | None = None) -> EvalRun:
    """`python run_eval.py` from its own folder, as a user would run it.

    on_progress(done, total) is called as the evaluation's own progress bar advances.
    """
    results_path.unlink(missing_ok=True)
    cmd = [sys.executable, "run_eval.py", "--results-json", str(results_path), *(extra_args or [])]
    child_env = {**os.environ, **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=evaluation_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out_chunks, None), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err_chunks, on_progress), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code, timed_out = proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code, timed_out = None, True
    for reader in readers:
        reader.join(timeout=10)
    out = b"".join(out_chunks).decode(errors="replace")
    err = b"".join(err_chunks).decode(errors="replace")
    results: dict[str, Any] = {}
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            results = {}
    return EvalRun(code, timed_out, round(time.monotonic() - start, 2), out[-OUTPUT_TAIL:], err[-OUTPUT_TAIL:], results)


def _drain(stream, chunks: list[bytes], on_progress: ProgressCallback | None) -> None:
    """Read a child's stream to the end (so it never blocks on a full pipe), reporting progress."""
    pending = ""
    for chunk in iter(lambda: stream.read1(65536), b""):
        chunks.append(chunk)
        if on_progress is None:
            continue
        pending += chunk.decode(errors="replace")
        *complete, pending = re.split(r"[\r\n]", pending)
        for line in complete:
            if match := _ROW_PROGRESS.search(line):
                try:
                    on_progress(int(match.group(1)), int(match.group(2)))
                except Exception:
                    on_progress = None  # a broken progress display must not break validation
    stream.close()
