"""Production monitors on real conversations: what registers, and whether it says what the suite says.

On a fresh sqlite store loaded with the given conversations (`load_traces.py`), this:
  1. runs `trace2eval run` (deterministic engine) to a validated suite;
  2. runs `trace2eval monitor` on it (`sessions.monitor.sync`): how many of the suite's scorers
     were registered, and why each other one was not (skipped, or refused at start);
  3. loads every registered code scorer back with `get_scorer` in a fresh process and runs it beside
     the suite's own scorer on every dataset row and on every trace of the experiment, counting the
     traces where value or rationale differ;
  4. tries to start the registered code scorers, which is where the lag from logging a trace to
     its assessment would be measured: MLflow's open-source store (3.17) refuses to start any scorer
     whose model is not a gateway:/ endpoint, so on this store the lag is not measurable (said so).

Usage:
  python benchmarks/monitor.py --traces ../shared/traces/load_traces.py ../shared/traces/dev/*.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="conversation files for load_traces.py")
    p.add_argument("--traces", type=Path, required=True, help="path of load_traces.py")
    p.add_argument("--limit", type=int, help="load at most this many conversations")
    p.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    args = p.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="trace2eval-monitor-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_MODEL_CATALOG_URI": "", "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    start = time.monotonic()
    load = [sys.executable, str(args.traces), "--tracking-uri", uri, "--experiment", "monitored", "--no-labels"]
    load += [str(f) for f in args.files] + (["--limit", str(args.limit)] if args.limit else [])
    out = subprocess.run(load, capture_output=True, text=True, env=env, check=True).stdout
    experiment_id = out.strip().splitlines()[-1].strip()
    loaded_s = time.monotonic() - start

    run = [sys.executable, "-m", "trace2eval", "run", "-e", experiment_id, "--tracking-uri", uri]
    run += ["--out", str(folder / "sessions"), "--max-traces", "0", "-q"]
    proc = subprocess.run(run, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"trace2eval run failed:\n{proc.stderr[-3000:]}")
    session = Path(proc.stdout.strip().splitlines()[-1])

    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()
    from trace2eval.sessions import monitor

    target = monitor.resolve(session)
    specs = monitor.load_suite_specs(target)
    sync_start = time.monotonic()
    result = monitor.sync(target, 1.0)
    sync_s = time.monotonic() - sync_start
    code = [n for n in result.identity.get("compared", {})]
    every_start = time.monotonic()
    every = monitor.identity(target, code, all_traces=True)
    every_s = time.monotonic() - every_start
    registered = monitor.registered(target)

    report = {
        "conversations_loaded": None,
        "traces": every.get("rows"),
        "load_seconds": round(loaded_s, 1),
        "suite_scorers": len(specs),
        "code_scorers": sum(1 for s in specs if s.is_code),
        "judges": sum(1 for s in specs if not s.is_code),
        "registered": len(registered),
        "started": sum(1 for r in registered if r.running),
        "not_started": result.not_started,
        "skipped": result.skipped,
        "identity_dataset_rows": {
            "rows": result.identity.get("rows"),
            "rows_with_trace": result.identity.get("rows_with_trace"),
            "compared": result.identity.get("compared"),
            "differ": {k: len(v) for k, v in result.identity.get("differ", {}).items()},
        },
        "identity_every_trace": {
            "traces": every.get("rows"),
            "compared": every.get("compared"),
            "suite_failed": every.get("suite_failed"),
            "differ": {k: len(v) for k, v in every.get("differ", {}).items()},
            "seconds": round(every_s, 1),
        },
        "sync_seconds": round(sync_s, 1),
        "lag_seconds": None,
        "lag_note": "not measurable on MLflow's open-source store: it refuses to start scorers that do not use a "
        "gateway:/ model, so no code scorer runs on new traces there (see not_started)",
        "session": str(session),
    }
    report["conversations_loaded"] = report["traces"]
    print(json.dumps(report, indent=2))
    print(
        f"\n{report['registered']} of {report['suite_scorers']} scorers registered "
        f"({report['code_scorers']} code scorers, {report['judges']} judges), {report['started']} started; "
        f"registered form vs suite: {sum((every.get('compared') or {}).values())} verdicts on {every.get('rows')} traces, "
        f"{sum(report['identity_every_trace']['differ'].values())} differ"
    )


if __name__ == "__main__":
    main()
