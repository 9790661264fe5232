"""Three nights of the bundle's job on real traces, run locally with `trace2eval job run-local`.

Night 1 reads the older conversations (tau-bench / AgentRx logs, dated early 2025); a person then
reviews the suite (labels a row, edits scorers.py); night 2 runs after the newer tau2-bench
conversations (dated later) arrived; night 3 finds nothing new. Prints, per night: new traces read,
rows added and in total, open conflicts, task and total seconds, and the job's result; then checks
that night 2 read only the new traces, kept the person's edits, and added no duplicate source.

Usage:
  python benchmarks/nightly.py --traces-dir DIR [--work DIR]
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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces" / "dev"


def load(traces_dir: Path, files: list[Path], uri: str) -> int:
    """Load conversations as traces; returns how many."""
    loader = traces_dir.parent / "load_traces.py"
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the loader dates undated logs with hash(); keep it stable
    proc = subprocess.run(
        [sys.executable, str(loader), "--tracking-uri", uri, "--experiment", "tau", *map(str, files)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return int(proc.stderr.split("loaded ")[1].split()[0])


def night(work: Path, uri: str, run_id: str) -> dict:
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "job",
            "run-local",
            "--bundle-root",
            str(REPO),
            "--var",
            "experiment_id=1",
            "--var",
            f"volume_path={work / 'vol'}",
            "--var",
            "since=",
            "--param",
            f"tracking_uri={uri}",
            "--run-id",
            run_id,
            "--runs-dir",
            str(work / "runs"),
        ],
        capture_output=True,
        text=True,
        cwd=work,
    )
    seconds = time.monotonic() - start
    record = json.loads((work / "runs" / "trace2eval_nightly" / run_id / "run.json").read_text())
    tasks = record["tasks"]
    suite = work / "vol" / "suite"
    rows = json.loads((suite / "evaluation" / "eval_dataset.json").read_text())["rows"]
    manifest = json.loads((suite / "state" / "generated_files.json").read_text())
    return {
        "run": run_id,
        "result": record["result_state"],
        "exit": proc.returncode,
        "seconds": round(seconds, 1),
        "new_traces": tasks["initializer"]["values"].get("new_traces", 0),
        "rows_added": sum(r["metadata"].get("added_in") == run_id for r in rows),
        "rows_total": len(rows),
        "conflicts": len(manifest["conflicts"]),
        "fix": tasks["fix"]["state"],
        "task_seconds": {k: t["seconds"] for k, t in tasks.items() if t["seconds"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = (args.work or Path(tempfile.mkdtemp(prefix="trace2eval-nightly-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work / 'tau.db'}"
    files = sorted(args.traces_dir.glob("*.json"))
    older = [f for f in files if not f.name.startswith("tau2_")]
    newer = [f for f in files if f.name.startswith("tau2_")]

    results = []
    load(args.traces_dir, older, uri)
    results.append(night(work, uri, "1"))

    suite = work / "vol" / "suite" / "evaluation"
    data = json.loads((suite / "eval_dataset.json").read_text())
    data["rows"][0]["expectations"] = {"expected_facts": ["reviewed by a person"]}
    (suite / "eval_dataset.json").write_text(json.dumps(data, indent=2))
    scorers = suite / "scorers.py"
    scorers.write_text(scorers.read_text() + "\n# reviewed: thresholds agreed with the support team\n")
    edited = scorers.read_text()
    first_sources = {r["metadata"]["source_trace"] for r in data["rows"]}

    arrived = load(args.traces_dir, newer, uri)
    results.append(night(work, uri, "2"))
    results.append(night(work, uri, "3"))

    print(
        f"{'night':<6}{'result':<10}{'new traces':>11}{'rows +':>8}{'rows':>6}{'conflicts':>10}{'fix':>10}{'seconds':>9}"
    )
    for r in results:
        print(
            f"{r['run']:<6}{r['result']:<10}{r['new_traces']:>11}{r['rows_added']:>8}{r['rows_total']:>6}"
            f"{r['conflicts']:>10}{r['fix']:>10}{r['seconds']:>9}"
        )
    for r in results:
        print(f"night {r['run']} task seconds: {r['task_seconds']}")

    rows = json.loads((suite / "eval_dataset.json").read_text())["rows"]
    sources = [r["metadata"]["source_trace"] for r in rows]
    checks = {
        "night 2 read only the new traces": results[1]["new_traces"] == arrived > 0,
        "night 3 found nothing new": results[2]["new_traces"] == 0,
        "the edited scorers.py was kept": scorers.read_text() == edited and (suite / "scorers.py.new").exists(),
        "the labelled row was kept": rows[0].get("expectations") == {"expected_facts": ["reviewed by a person"]},
        "no source trace twice": len(sources) == len(set(sources)),
        "night-1 rows all kept": first_sources <= set(sources),
        "every night succeeded": all(r["result"] == "SUCCESS" and r["exit"] == 0 for r in results),
    }
    for name, ok in checks.items():
        print(f"{'ok ' if ok else 'FAIL'} {name}")
    print(f"work folder: {work}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
