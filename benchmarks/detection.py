"""Do the generated code scorers catch real failures? Measured on labelled real conversations.

Loads the real customer-service conversations (tau-bench family, graded pass/fail by their
benchmarks) into temporary MLflow stores **without their labels**, runs `trace2eval run` on one
set, applies the generated `get_code_scorers()` to every trace of another set with
`mlflow.genai.evaluate`, and compares the flags with the hidden labels.

A trace counts as flagged when any code scorer returns a failing value.

Splits (all by task, so the same task never sits on both sides):
  in-sample     generate on everything, evaluate on everything
  holdout       generate on a random half of the tasks, evaluate on the other half (both ways)
  cross-domain  generate on one domain (airline / retail), evaluate on the other (both ways)

Usage:
  python benchmarks/detection.py                       # all splits
  python benchmarks/detection.py --split holdout --traces-dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import io
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"


def load(
    loader: Path, files: list[Path], uri: str, experiment: str, keys: list[str] | None, workdir: Path
) -> tuple[str, dict]:
    """Write conversations into a store, labels hidden; return (experiment id, {trace_id: success})."""
    answer = workdir / f"{experiment}-answers.json"
    cmd = [
        sys.executable,
        str(loader),
        "--tracking-uri",
        uri,
        "--experiment",
        experiment,
        "--no-labels",
        "--answer-key",
        str(answer),
        *map(str, files),
    ]
    if keys is not None:
        ids = workdir / f"{experiment}-ids.json"
        ids.write_text(json.dumps(sorted(keys)))
        cmd += ["--ids", str(ids)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    experiment_id = proc.stdout.strip().splitlines()[-1]
    return experiment_id, {tid: v["success"] for tid, v in json.loads(answer.read_text()).items()}


def generate(uri: str, experiment_id: str, out: Path) -> tuple[Path, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            experiment_id,
            "--tracking-uri",
            uri,
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"trace2eval run failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]), seconds


def flags_on(session: Path, uri: str, experiment_id: str) -> tuple[dict[str, dict[str, bool]], float]:
    """{trace_id: {scorer: failed?}} from mlflow.genai.evaluate over every trace of the experiment."""
    import mlflow

    spec = importlib.util.spec_from_file_location("generated_scorers", session / "evaluation" / "scorers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    start = time.monotonic()
    traces = mlflow.search_traces(locations=[experiment_id], max_results=100_000)
    scorers = module.get_code_scorers()
    with contextlib.redirect_stdout(io.StringIO()):  # evaluate() prints a banner per run
        result = mlflow.genai.evaluate(data=traces, scorers=scorers)
    seconds = time.monotonic() - start
    df = result.result_df
    flags: dict[str, dict[str, bool]] = {}
    for _, row in df.iterrows():
        per = {}
        for s in scorers:
            value = row.get(f"{s.name}/value")
            per[s.name] = value is False or str(value).lower() in ("false", "no")
        flags[row["trace_id"]] = per
    return flags, seconds


def score(flags: dict[str, dict[str, bool]], answers: dict[str, bool]) -> dict:
    failed = [t for t in answers if not answers[t]]
    good = [t for t in answers if answers[t]]
    names = sorted({n for per in flags.values() for n in per})
    table = {}
    for name in names + ["ANY"]:
        hit = (
            (lambda t: any(flags.get(t, {}).values()))
            if name == "ANY"
            else (lambda t, n=name: flags.get(t, {}).get(n, False))
        )
        tp, fp = sum(map(hit, failed)), sum(map(hit, good))
        table[name] = {
            "flag_failed": tp,
            "flag_good": fp,
            "failed": len(failed),
            "good": len(good),
            "recall": tp / len(failed) if failed else 0.0,
            "false_alarm": fp / len(good) if good else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0,
        }
    return table


def print_table(title: str, table: dict, gen_s: float, eval_s: float) -> None:
    print(f"\n## {title}   (pipeline {gen_s:.1f} s, scoring {eval_s:.1f} s)")
    print(
        f"{'scorer':28s} {'flags failed':>13s} {'flags good':>11s} {'recall':>7s} {'false alarm':>12s} {'precision':>10s}"
    )
    for name, r in table.items():
        print(
            f"{name:28s} {r['flag_failed']:>6d}/{r['failed']:<6d} {r['flag_good']:>4d}/{r['good']:<6d} "
            f"{r['recall']:>7.2f} {r['false_alarm']:>12.2f} {r['precision']:>10.2f}"
        )


def run_split(name, gen_keys, eval_keys, files, loader, work, results):
    work.mkdir(parents=True, exist_ok=True)
    gen_uri = f"sqlite:///{work / f'{name}-gen.db'}"
    eval_uri = f"sqlite:///{work / f'{name}-eval.db'}"
    gen_id, _ = load(loader, files, gen_uri, "gen", gen_keys, work)
    if eval_keys is None:
        eval_uri, eval_id = gen_uri, gen_id
        answers = json.loads((work / "gen-answers.json").read_text())
        answers = {t: v["success"] for t, v in answers.items()}
    else:
        eval_id, answers = load(loader, files, eval_uri, "eval", eval_keys, work)
    session, gen_s = generate(gen_uri, gen_id, work / f"{name}-sessions")
    flags, eval_s = flags_on(session, eval_uri, eval_id)
    table = score(flags, answers)
    print_table(
        f"{name}: generated on {len(gen_keys) if gen_keys else 'all'} tasks, evaluated on {len(answers)} conversations",
        table,
        gen_s,
        eval_s,
    )
    results[name] = {"table": table, "pipeline_s": gen_s, "scoring_s": eval_s, "session": str(session)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES / "dev")
    p.add_argument("--loader", type=Path, default=DEFAULT_TRACES / "load_traces.py")
    p.add_argument("--split", choices=["in-sample", "holdout", "cross-domain", "all"], default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    files = sorted(a.traces_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no conversation files in {a.traces_dir}")
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_GENAI_EVAL_MAX_WORKERS", "2")  # sqlite: one writer at a time
    # The loader's --ids filters on 'domain:task_id': read the same keys from the files.
    domains: dict[str, str] = {}
    for f in files:
        data = json.loads(f.read_text())
        records = data["simulations"] if isinstance(data, dict) and "simulations" in data else data
        domain = (
            data["info"]["environment_info"]["domain_name"]
            if isinstance(data, dict) and "simulations" in data
            else ("airline" if "airline" in f.name else "retail")
        )
        for r in records:
            domains[f"{domain}:{r['task_id']}"] = domain

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="t2e-detection-") as tmp:
        work = Path(tmp)
        splits = ["in-sample", "holdout", "cross-domain"] if a.split == "all" else [a.split]
        keys = sorted(domains)
        if "in-sample" in splits:
            run_split("in-sample", None, None, files, a.loader, work / "in", results)
        if "holdout" in splits:
            rng = random.Random(a.seed)
            shuffled = keys[:]
            rng.shuffle(shuffled)
            half_a, half_b = shuffled[: len(keys) // 2], shuffled[len(keys) // 2 :]
            run_split("holdout A->B", half_a, half_b, files, a.loader, work / "hab", results)
            run_split("holdout B->A", half_b, half_a, files, a.loader, work / "hba", results)
        if "cross-domain" in splits:
            airline = [k for k in keys if domains[k] == "airline"]
            retail = [k for k in keys if domains[k] == "retail"]
            run_split("airline->retail", airline, retail, files, a.loader, work / "ar", results)
            run_split("retail->airline", retail, airline, files, a.loader, work / "ra", results)
        unseen = [r["table"]["ANY"] for n, r in results.items() if n != "in-sample"]
        if unseen:
            tp = sum(r["flag_failed"] for r in unseen)
            fn = sum(r["failed"] for r in unseen)
            fp = sum(r["flag_good"] for r in unseen)
            gd = sum(r["good"] for r in unseen)
            print(
                f"\nUnseen conversations, all splits pooled: recall {tp / fn:.2f} ({tp}/{fn}), "
                f"false-alarm rate {fp / gd:.2f} ({fp}/{gd})"
            )
            results["pooled_unseen"] = {
                "recall": tp / fn,
                "false_alarm": fp / gd,
                "flag_failed": tp,
                "failed": fn,
                "flag_good": fp,
                "good": gd,
            }
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
