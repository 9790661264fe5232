"""Run code scorers on sample rows in a subprocess with a timeout, before they are kept.

The candidate scorers.py (every spec rendered: trace2eval's checks, and the declarative checks an
LLM proposed as data; no model-written code exists to run) is written to a
scratch folder inside the session and imported by a child Python process in isolated mode with a
minimal environment: no credentials, resource limits, a wall-clock timeout, and a per-call alarm.
The sample rows carry their real traces, serialized, so a scorer sees what it will see under
`mlflow.genai.evaluate` and the child needs no access to the tracking store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trace2eval.env import SAFE_MLFLOW_ENV
from trace2eval.sessions.files import write_json, write_text

CHILD = Path(__file__).with_name("_samplechild.py")
DEFAULT_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 10
MEMORY_LIMIT = 4 * 2**30
PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")


@dataclass
class SampleRun:
    """What happened when the candidate scorers ran on the sample rows."""

    seconds: float
    timed_out: bool = False
    crashed: str | None = None  # the child died or could not import scorers.py
    scorers: dict[str, dict[str, Any]] = field(default_factory=dict)
    judges: dict[str, Any] | None = None

    def problems_of(self, name: str) -> list[str]:
        """Why scorer `name` cannot be kept (empty when it scored every sample row)."""
        if self.timed_out:
            return [f"the sample run did not finish within its time limit ({self.seconds:.0f} s): a loop?"]
        if self.crashed:
            return [f"scorers.py could not be imported with this scorer: {self.crashed[-800:]}"]
        entry = self.scorers.get(name)
        if entry is None:
            return ["the scorer was not run"]
        found = [
            f"row {p['row']}: {p['problem']}" if p.get("row") is not None else p["problem"] for p in entry["problems"]
        ]
        return found[:3] + ([f"... and {len(found) - 3} more rows"] if len(found) > 3 else [])

    def summary(self) -> dict[str, Any]:
        """Small, model-readable: per scorer how many rows got a value, the value mix, first problems."""
        return {
            "timed_out": self.timed_out,
            "crashed": self.crashed[-800:] if self.crashed else None,
            "scorers": {
                n: {
                    "scored": f"{e['values']}/{e['rows']}",
                    "values": e["value_counts"],
                    "problems": self.problems_of(n),
                }
                for n, e in self.scorers.items()
            },
            "judges": self.judges,
        }


def _child_env() -> dict[str, str]:
    """Only what Python and MLflow need: never the parent's tokens or keys."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update(SAFE_MLFLOW_ENV)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _limits(cpu_s: int):
    def apply() -> None:  # runs in the child before exec (POSIX only)
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
            resource.setrlimit(resource.RLIMIT_FSIZE, (50 * 2**20, 50 * 2**20))
            # Address space, not resident memory: MLflow's imports map ~1.5 GB of it up front.
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        except (ImportError, ValueError, OSError):
            pass

    return apply


def run_samples(
    scorers_code: str,
    names: list[str],
    rows: list[dict[str, Any]],
    workdir: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    call_timeout_s: int = CALL_TIMEOUT_S,
) -> SampleRun:
    """Write `scorers_code` to `workdir/scorers.py` and call each scorer in `names` on every row.

    rows: [{"inputs", "outputs", "expectations"?, "source_trace"?, "trace": Trace.to_json() | None}]
    """
    workdir = Path(workdir)
    write_text(workdir / "scorers.py", scorers_code)
    job, result_path = workdir / "job.json", workdir / "result.json"
    write_json(job, {"dir": str(workdir), "names": names, "rows": rows, "call_timeout_s": call_timeout_s})
    result_path.unlink(missing_ok=True)
    start = time.monotonic()
    kwargs: dict[str, Any] = {"preexec_fn": _limits(int(timeout_s) + 5)} if os.name == "posix" else {}
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(CHILD), str(job), str(result_path)],
            cwd=workdir,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        return SampleRun(round(time.monotonic() - start, 1), timed_out=True)
    seconds = round(time.monotonic() - start, 1)
    if not result_path.exists():
        tail = (proc.stderr or proc.stdout or f"exit code {proc.returncode}")[-1500:]
        return SampleRun(seconds, crashed=f"the sample run crashed (exit code {proc.returncode}): {tail}")
    data = json.loads(result_path.read_text(encoding="utf-8"))
    if data.get("import_error"):
        return SampleRun(seconds, crashed=data["import_error"])
    return SampleRun(seconds, scorers=data.get("scorers", {}), judges=data.get("judges"))
