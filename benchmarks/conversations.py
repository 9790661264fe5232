"""Conversations as the unit: the same labelled conversations written one trace per user turn
(`load_traces.py --per-turn`, grouped by `mlflow.trace.session`) and one trace each.

For each layout it runs `trace2eval run` (no judge model) and prints: the traces, the conversations
the analysis found, the dataset rows (turn rows of how many conversations, single-trace rows), the
session-level scorers generated, whether the suite validated, the run's wall time and peak memory.

Usage:
  python benchmarks/conversations.py                          # the dev conversations
  python benchmarks/conversations.py --limit 40 --traces-dir DIR --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline import measure

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"


def load(loader: Path, files: list[Path], uri: str, experiment: str, per_turn: bool, limit: int | None) -> str:
    cmd = [sys.executable, str(loader), "--tracking-uri", uri, "--experiment", experiment, "--no-labels"]
    cmd += ["--per-turn"] if per_turn else []
    cmd += ["--limit", str(limit)] if limit else []
    proc = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def run_layout(name: str, uri: str, experiment_id: str, out: Path) -> dict:
    run = measure(["trace2eval", "run", "-e", experiment_id, "--tracking-uri", uri, "--out", str(out), "--quiet"])
    session = next(d for d in out.iterdir() if d.is_dir() and (d / "state" / "analysis.json").exists())
    analysis = json.loads((session / "state" / "analysis.json").read_text())
    rows = json.loads((session / "evaluation" / "eval_dataset.json").read_text())["rows"]
    specs = json.loads((session / "state" / "scorer_specs.json").read_text())["scorers"]
    validation = json.loads((session / "state" / "validation_results.json").read_text())
    conversations = analysis.get("conversations") or {}
    turn_rows = [r for r in rows if (r.get("metadata") or {}).get("session")]
    return {
        "layout": name,
        "traces": analysis["trace_summary"]["total_analyzed"],
        "conversations": conversations.get("count"),
        "session_metadata": conversations.get("has_session_metadata"),
        "turns_p50": (conversations.get("turns_per_conversation") or {}).get("p50"),
        "dataset_rows": len(rows),
        "conversation_rows": len({r["metadata"]["session"] for r in turn_rows}),
        "turn_rows": len(turn_rows),
        "single_trace_rows": len(rows) - len(turn_rows),
        "session_scorers": sorted(s["name"] for s in specs if s.get("level") == "session"),
        "query_types": len(analysis.get("query_types") or []),
        "validated": validation.get("validation_status") == "passed",
        "seconds": round(run["seconds"], 1),
        "peak_rss_mb": round(max(run["rss_mb"], run["children_rss_mb"])),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES / "dev")
    p.add_argument("--loader", type=Path, default=DEFAULT_TRACES / "load_traces.py")
    p.add_argument("--limit", type=int, help="conversations per file (load_traces.py --limit)")
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    files = sorted(a.traces_dir.glob("*.json"))
    if not files or not a.loader.exists():
        raise SystemExit(f"Error: no conversations in {a.traces_dir} or no {a.loader} — pass --traces-dir / --loader")
    results = []
    with tempfile.TemporaryDirectory(prefix="t2e-conv-") as tmp:
        for name, per_turn in (("per-turn", True), ("single", False)):
            uri = f"sqlite:///{Path(tmp) / f'{name}.db'}"
            experiment_id = load(a.loader, files, uri, name, per_turn, a.limit)
            results.append(run_layout(name, uri, experiment_id, Path(tmp) / f"out-{name}"))
    keys = [k for k in results[0] if k != "session_scorers"]
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{r['layout']:>10}" for r in results))
    for k in keys[1:]:
        print(f"{k:{width}}  " + "  ".join(f"{str(r[k]):>10}" for r in results))
    for r in results:
        print(f"session scorers ({r['layout']}): {len(r['session_scorers'])} {', '.join(r['session_scorers'])}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
