"""Where does the time go? trace2eval against the read floor of its own tracking store.

On a store of N traces this measures, each in a fresh process:
  (a) the read floor: paging through every trace with `MlflowClient.search_traces` (spans
      included), doing nothing else;
  (b) trace2eval's initializer: read + digest + analysis (`trace2eval task initializer`);
  (c) the full run up to a validated suite (`trace2eval run`).
and prints wall time, traces/s and peak RSS for each, and the ratio (b)/(a).

Usage:
  python benchmarks/generate_traces.py --tracking-uri sqlite:///bench.db -n 10000   # once
  python benchmarks/pipeline.py --tracking-uri sqlite:///bench.db --experiment-id 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs a command in-process and reports its wall time and peak RSS (itself and its children).
_MEASURE = r"""
import json, resource, runpy, sys, time
start = time.monotonic()
code = 0
try:
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
seconds = time.monotonic() - start
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("MEASURE " + json.dumps({"seconds": seconds, "rss_mb": own, "children_rss_mb": kids, "code": code}), file=sys.stderr)
sys.exit(code)
"""

# The clock starts where a task's does: before MLflow is imported and the store opened, which
# every reader pays for (~1.5 s and ~0.7 s here) and trace2eval's tasks count in their time.
_FLOOR = r"""
import os, sys, time
start = time.monotonic()
from trace2eval.env import apply_safe_mlflow_env
apply_safe_mlflow_env()
from mlflow import MlflowClient
uri, exp, page = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = MlflowClient(uri)
token, n = None, 0
while True:
    traces = client.search_traces(locations=[exp], max_results=page, page_token=token)
    n += len(traces)
    token = traces.token
    if not token or not traces:
        break
print(n, time.monotonic() - start)
"""


def measure(args: list[str], env=None) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, env=env)
    line = next((l for l in proc.stderr.splitlines() if l.startswith("MEASURE ")), None)
    if line is None or proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("MEASURE ") :])
    result["stdout"] = proc.stdout
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment-id", required=True)
    p.add_argument("--page-size", type=int, default=1000, help="page size for the read floor")
    p.add_argument("--max-traces", type=int, default=0, help="trace2eval --max-traces (0 = all)")
    p.add_argument("--skip-full", action="store_true", help="only the floor and the initializer")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    env = {**os.environ, "MLFLOW_MODEL_CATALOG_URI": "", "MLFLOW_SEARCH_TRACES_MAX_THREADS": "1"}

    floor_script = Path(tempfile.mkdtemp(prefix="t2e-bench-")) / "floor.py"
    floor_script.write_text(_FLOOR)
    sys.path.insert(0, str(floor_script.parent))
    floor = measure(
        ["floor", a.tracking_uri, a.experiment_id, str(a.page_size)],
        env={**env, "PYTHONPATH": str(floor_script.parent) + os.pathsep + env.get("PYTHONPATH", "")},
    )
    n, floor["loop_s"] = floor["stdout"].strip().splitlines()[-1].split()
    n, floor["loop_s"] = int(n), float(floor["loop_s"])

    out = Path(tempfile.mkdtemp(prefix="t2e-bench-sessions-"))
    session = out / "init"
    init = measure(
        [
            "trace2eval",
            "task",
            "initializer",
            "--session",
            str(session),
            "-e",
            a.experiment_id,
            "--tracking-uri",
            a.tracking_uri,
            "--max-traces",
            str(a.max_traces),
            "--quiet",
        ],
        env=env,
    )
    plan = json.loads((session / "eval_tasks.json").read_text())
    init["loop_s"] = plan["tasks"][0]["duration_s"]
    rows = [("read floor (search_traces, spans)", floor), ("initializer (read + digest + analysis)", init)]
    if not a.skip_full:
        full = measure(
            [
                "trace2eval",
                "run",
                "-e",
                a.experiment_id,
                "--tracking-uri",
                a.tracking_uri,
                "--max-traces",
                str(a.max_traces),
                "--out",
                str(out),
                "--quiet",
            ],
            env=env,
        )
        sessions = [d for d in out.iterdir() if d.name != "init"]
        plan = json.loads((sessions[0] / "eval_tasks.json").read_text())
        full["loop_s"] = sum(t["duration_s"] or 0 for t in plan["tasks"])
        rows.append(("full run to a validated suite", full))

    print(f"\n{n} traces in {a.tracking_uri.split('/')[-1]} (read floor page size {a.page_size})")
    print(
        "wall s = the whole process (Python start included); work s = the floor from importing MLflow to its last page / the tasks' own time"
    )
    print(f"{'step':42s} {'wall s':>8s} {'work s':>8s} {'traces/s':>9s} {'peak RSS MB':>12s} {'child RSS MB':>13s}")
    for name, r in rows:
        print(
            f"{name:42s} {r['seconds']:8.1f} {r['loop_s']:8.1f} {n / r['loop_s']:9.0f} {r['rss_mb']:12.0f} {r['children_rss_mb']:13.0f}"
        )
    ratio = init["loop_s"] / floor["loop_s"]
    print(f"initializer / read floor (work): {ratio:.2f}   (wall: {init['seconds'] / floor['seconds']:.2f})")
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "traces": n,
                    "rows": {k: {x: v for x, v in r.items() if x != "stdout"} for k, r in rows},
                    "ratio": ratio,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
