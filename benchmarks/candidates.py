"""Does `run_eval.py --agent` catch a regressed candidate, and only a regressed one?

On real conversations (the public tau-bench / tau2-bench runs in ../shared/traces, loaded with its
load_traces.py) this generates a suite offline (`trace2eval run`, no LLM), then runs the suite's own
`run_eval.py --agent benchmarks/replay_agent.py:predict` against candidate versions of the agent:

  replay          replays each production trace exactly                 expected: exit 0
  reword x N      the same calls, answers reworded at random (N seeds)  expected: exit 0 (no false alarm)
  drop_tools:S    stops calling its tools on a share S of the requests  expected: exit 1 once S is large enough
  skip_confirmation:S  on a share S, writes without first asking where  expected: exit 1 once S is large enough
                  production asked and the user said yes
  repeat_tool:S   repeats every tool call 3 times on a share S          expected: exit 1 once S is large enough
  break_tool:S    its tool calls fail on a share S of the requests      expected: exit 1 once S is large enough

and prints, with counts: the false-regression rate over the reworded repeats, the smallest injected
share caught (at the suite's dataset size), and the time per row of a local candidate.

Usage:
  python benchmarks/candidates.py --traces ../shared/traces [--files dev/tau2_gpt-4.1_airline.json] \
      [--repeats 10] [--shares 0.05,0.1,0.2,0.4,1.0] [--per-turn] [--json out.json]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from replay_agent import INJECTIONS, key, turn_key  # noqa: E402


def load(traces: Path, files: list[str], uri: str, per_turn: bool, folder: Path) -> str:
    from mlflow import MlflowClient

    # Artifacts (the candidate runs log their comparison) stay in the temporary folder.
    MlflowClient(uri).create_experiment("bench-candidates", artifact_location=str(folder / "artifacts"))
    cmd = [sys.executable, str(traces / "load_traces.py"), "--tracking-uri", uri, "--experiment", "bench-candidates"]
    cmd += (["--per-turn"] if per_turn else []) + [str(traces / f) for f in files]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=folder).stdout
    return out.strip().splitlines()[-1].split()[-1]


def generate(uri: str, experiment_id: str, folder: Path) -> Path:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from trace2eval.cli.main import main; main()",
            "run",
            "--experiment-id",
            experiment_id,
            "--tracking-uri",
            uri,
        ]
        + ["--out", str(folder), "--quiet"],
        env=env,
        check=False,
        capture_output=True,
    )
    found = sorted(folder.glob("*/evaluation/run_eval.py"))
    if not found:
        raise SystemExit(f"no suite was generated under {folder}")
    return found[-1].parent


def replay_file(uri: str, evaluation: Path, path: Path) -> int:
    """The production trace of every dataset row, keyed by its request, for replay_agent.py."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    rows = json.loads((evaluation / "eval_dataset.json").read_text())["rows"]
    recorded: dict = {"__turns__": {}}
    for row in rows:
        trace = mlflow.get_trace(row["metadata"]["source_trace"])
        root = next(s for s in trace.data.spans if s.parent_id is None)
        spans = [
            {
                "id": s.span_id,
                "parent": s.parent_id,
                "name": s.name,
                "type": s.span_type,
                "inputs": s.inputs,
                "outputs": s.outputs,
                "status": s.status.status_code.value
                if hasattr(s.status.status_code, "value")
                else str(s.status.status_code),
                "attributes": {k: v for k, v in s.attributes.items() if k == "mlflow.chat.tokenUsage"},
                "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events],
            }
            for s in trace.data.spans
            if s.parent_id is not None
        ]
        status = trace.info.state.value if hasattr(trace.info.state, "value") else str(trace.info.state)
        if turn_key(row["inputs"]) is not None:
            recorded.setdefault("__turns__", {})[turn_key(row["inputs"])] = key(row["inputs"])
        recorded[key(row["inputs"])] = {
            "root": root.span_id,
            "spans": spans,
            "outputs": row["outputs"],
            "status": status,
        }
    path.write_text(json.dumps(recorded, default=str))
    return len(rows)


def run_candidate(evaluation: Path, uri: str, experiment_id: str, replay: Path, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "r.json"
        env = {**os.environ, "REPLAY_FILE": str(replay), "REPLAY_MODE": mode, "PYTHONPATH": str(HERE)}
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "run_eval.py", "--tracking-uri", uri, "--experiment-id", experiment_id, "--no-judges"]
            + ["--agent", f"{HERE / 'replay_agent.py'}:predict", "--results-json", str(results)],
            cwd=evaluation,
            env=env,
            capture_output=True,
            text=True,
        )
        report = json.loads(results.read_text()) if results.exists() else {}
    candidate = report.get("candidate") or {}
    return {
        "mode": mode,
        "exit": proc.returncode,
        "seconds": round(time.monotonic() - start, 1),
        "seconds_per_row": candidate.get("seconds_per_row"),
        "regressed": report.get("regressions") or [],
        # Counted in the unit each scorer was compared on: rows, or conversations for a scorer that
        # reads a whole conversation (per-turn traces).
        "lost": {
            s["scorer"]: f"{s['regressed']} {_unit(s)}" for s in candidate.get("scorers", []) if s.get("regressed")
        },
        "won": {s["scorer"]: f"{s['fixed']} {_unit(s)}" for s in candidate.get("scorers", []) if s.get("fixed")},
        "compared": {s["scorer"]: f"{s['rows']} {_unit(s)}" for s in candidate.get("scorers", [])},
        "lost_conversations": sorted(
            {f["session"] for f in candidate.get("flipped", []) if f.get("session") and f["direction"] == "regressed"}
        ),
        "error": (proc.stderr.strip().splitlines() or [""])[-1] if proc.returncode == 2 else None,
    }


def _unit(scorer: dict) -> str:
    return "conv" if scorer.get("unit") == "conversation" else "rows"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", type=Path, required=True, help="the folder with load_traces.py and dev/")
    p.add_argument("--files", default="dev/tau2_gpt-4.1_airline.json", help="comma-separated, relative to --traces")
    p.add_argument("--per-turn", action="store_true", help="one trace per user turn (load_traces.py --per-turn)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--shares", default="0.05,0.1,0.2,0.4,1.0")
    p.add_argument(
        "--inject", default="drop_tools,skip_confirmation,repeat_tool,break_tool", help="injected regressions to try"
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri = f"sqlite:///{tmp / 'bench.db'}"
        experiment_id = load(args.traces.resolve(), args.files.split(","), uri, args.per_turn, tmp)
        evaluation = generate(uri, experiment_id, tmp / "sessions")
        rows = replay_file(uri, evaluation, tmp / "replay.json")
        print(f"suite: {rows} rows from {args.files}{' (per turn)' if args.per_turn else ''}")
        runs = [run_candidate(evaluation, uri, experiment_id, tmp / "replay.json", "replay")]
        runs += [
            run_candidate(evaluation, uri, experiment_id, tmp / "replay.json", f"reword:{i}")
            for i in range(args.repeats)
        ]
        shares = [float(s) for s in args.shares.split(",")]
        for kind in args.inject.split(","):
            runs += [
                run_candidate(evaluation, uri, experiment_id, tmp / "replay.json", f"{kind}:{s}:1") for s in shares
            ]
    for r in runs:
        print(
            f"  {r['mode']:<22} exit {r['exit']}  {r['seconds']:>6.1f} s  lost {r['lost'] or '-'}"
            + (f"  won {r['won']}" if r["won"] else "")
            + (f"  {r['error']}" if r["error"] else "")
        )
    reworded = [r for r in runs if r["mode"].startswith("reword")]
    false_alarms = sum(r["exit"] == 1 for r in reworded)
    injected = [r for r in runs if r["mode"].split(":")[0] in INJECTIONS]
    caught = {}
    for r in injected:
        kind, share = r["mode"].split(":")[0], float(r["mode"].split(":")[1])
        if r["exit"] == 1:
            caught[kind] = min(caught.get(kind, share), share)
    per_row = [r["seconds_per_row"] for r in runs if r["seconds_per_row"] is not None]
    summary = {
        "rows": rows,
        "replay_exit": runs[0]["exit"],
        "false_regressions": false_alarms,
        "reworded_runs": len(reworded),
        "smallest_share_caught": caught,
        "shares_tried": shares,
        "seconds_per_row_median": sorted(per_row)[len(per_row) // 2] if per_row else None,
        "runs": runs,
    }
    print(f"replay (production exactly): exit {summary['replay_exit']}; rows compared per scorer {runs[0]['compared']}")
    print(
        f"false regressions: {false_alarms} of {len(reworded)} reworded runs ({false_alarms / max(1, len(reworded)):.0%})"
    )
    for kind in args.inject.split(","):
        print(
            f"smallest injected share caught ({kind}): {caught.get(kind, 'none of ' + args.shares)} (suite of {rows} rows)"
        )
    print(f"candidate time per row (local, median of runs): {summary['seconds_per_row_median']} s")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
