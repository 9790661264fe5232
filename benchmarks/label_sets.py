"""How much do a few labels help, over many label sets? `analysis/labels.py` measured without regenerating.

`detection.py --protocol labels-20` runs the whole generator once per label set, so five seeds cost ten
minutes, and which 20% is labelled sways the result more than most changes do. This benchmark digests each
agent's traces once (one source file = one experiment, as users have them), builds the unlabelled
findings and feature rows the way the analyzer does, and then, for each of N seeded label sets, gives
`labels.learn` the labels of a random 20% and counts what the learned combination flags on the other 80%,
beside the unlabelled suite on the same 80%. Counts are conversations, pooled over agents and label sets.

It measures the label learning only: the flags are the findings' evidence, which the generated code
scorers reproduce (`benchmarks/monitor.py` checks that parity); no scorers.py is written.

Usage:
  python benchmarks/label_sets.py --traces-dir ../shared/traces/dev --loader ../shared/traces/load_traces.py
  python benchmarks/label_sets.py --label-sets 100 --share 0.3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

from trace2eval.analysis import labels  # noqa: E402
from trace2eval.analysis.analyze import (  # noqa: E402
    Analyzer,
    build_findings,
    conversation_units,
    request_types,
    trace_coverage,
)
from trace2eval.traces.checks import rule_holds  # noqa: E402
from trace2eval.traces.source import TraceQuery, is_unreadable, iter_digests, open_client  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"


def agent_data(loader: Path, source: Path, work: Path) -> dict[str, Any]:
    """One agent's findings, feature rows (one per conversation) and hidden labels."""
    uri = f"sqlite:///{work / 'mlflow.db'}"
    answers = work / "answers.json"
    cmd = [sys.executable, str(loader), "--tracking-uri", uri, "--experiment", source.stem, "--no-labels"]
    proc = subprocess.run([*cmd, "--answer-key", str(answers), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"loading {source.name} failed:\n{proc.stderr[-3000:]}")
    experiment_id = proc.stdout.strip().splitlines()[-1]
    analyzer = Analyzer()
    for digest in iter_digests(open_client(uri, experiment_id), TraceQuery(experiment_id)):
        if not is_unreadable(digest):
            analyzer.add(digest)
    rows = analyzer.rows
    types = request_types(rows, analyzer.conversations, analyzer.seed)
    units = conversation_units(rows, analyzer.conversations)
    findings, _guards = build_findings(units, types, set(trace_coverage(rows)["missing"]))
    key = json.loads(answers.read_text())
    truth = {tid: bool(v["success"]) for tid, v in key.items()}
    # trace ids are new on every load: label sets are drawn over the conversations' source keys
    order = [tid for tid, _ in sorted(key.items(), key=lambda kv: kv[1]["source"])]
    return {"units": units, "findings": findings, "truth": truth, "order": order}


def flagged_by(result: dict[str, Any], findings: list[dict[str, Any]], units: list[dict[str, Any]]) -> set[str]:
    """The conversations the combination `learn` returned fails: its chosen findings' evidence and its
    label-chosen thresholds (the `labelled_signals` rule), or the unlabelled suite's failure checks."""
    evidence = {f["id"]: set(f.get("all_evidence") or ()) for f in findings if f.get("scorer", "code") == "code"}
    if result.get("learned"):
        chosen = [c for c in result["chosen"] if c in evidence]
    else:
        chosen = [f["id"] for f in findings if f["id"] in evidence and not (f.get("params") or {}).get("report_only")]
    out = set().union(*(evidence[c] for c in chosen)) if chosen else set()
    conditions = list((result.get("signals") or {}).values())
    return out | {u["trace_id"] for u in units if any(rule_holds(u, c)[0] for c in conditions)}


def counts(flagged: set[str], truth: dict[str, bool], ids: list[str]) -> list[int]:
    """[flagged failed, failed, flagged good, good] over `ids`."""
    bad = [t for t in ids if not truth[t]]
    good = [t for t in ids if truth[t]]
    return [len(flagged & set(bad)), len(bad), len(flagged & set(good)), len(good)]


def rate(c: list[int]) -> str:
    def one(hits: int, n: int) -> str:
        return f"{hits / n:.3f} ({hits}/{n})" if n else "n/a (0/0)"

    return f"flags failed {one(c[0], c[1])} at {one(c[2], c[3])} false alarms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES / "dev")
    p.add_argument("--loader", type=Path, default=DEFAULT_TRACES / "load_traces.py")
    p.add_argument("--label-sets", type=int, default=40, help="seeded label sets per agent")
    p.add_argument("--share", type=float, default=0.2, help="share of each agent's conversations labelled")
    p.add_argument("--json", type=Path, help="also write the per-agent counts here")
    args = p.parse_args()
    files = sorted(args.traces_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no *.json conversations in {args.traces_dir}")
    start = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in files:
            work = Path(tmp) / source.stem
            work.mkdir()
            data = agent_data(args.loader, source, work)
            truth, units, findings = data["truth"], data["units"], data["findings"]
            ids = data["order"]
            suite, learned, replaced = [0, 0, 0, 0], [0, 0, 0, 0], 0
            for k in range(args.label_sets):
                rng = random.Random(f"{source.stem}:{k}")  # a string seed: the same sets in every process
                chosen = set(rng.sample(ids, max(1, round(args.share * len(ids)))))
                given = {t: truth[t] for t in chosen}
                rows = [{**u, "label": given.get(u["trace_id"])} for u in units]
                result = labels.learn(findings, given, seed=0, rows=rows)
                replaced += bool(result["learned"])
                rest = [t for t in ids if t not in chosen]
                for total, flagged in (
                    (suite, flagged_by({"learned": False}, findings, units)),
                    (learned, flagged_by(result, findings, units)),
                ):
                    total[:] = [a + b for a, b in zip(total, counts(flagged, truth, rest))]
            results[source.stem] = {"unlabelled": suite, "labels": learned, "replaced": replaced}
            print(f"  {source.stem:36s} labels {rate(learned)}; the suite replaced in {replaced}/{args.label_sets}")
            print(f"  {'':36s} suite  {rate(suite)}")
    pooled = {key: [sum(r[key][i] for r in results.values()) for i in range(4)] for key in ("unlabelled", "labels")}
    replaced = sum(r["replaced"] for r in results.values())
    print(
        f"\nPOOLED over {len(results)} agents x {args.label_sets} label sets ({args.share:.0%} labelled), "
        f"on the unlabelled {1 - args.share:.0%}:"
    )
    print(f"  with labels  {rate(pooled['labels'])}  (suite replaced in {replaced}/{len(results) * args.label_sets})")
    print(f"  unlabelled   {rate(pooled['unlabelled'])}")
    print(
        f"\n{time.monotonic() - start:.0f} s; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), **results}, default=str))


if __name__ == "__main__":
    main()
