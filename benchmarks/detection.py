"""Do the generated code scorers catch real failures? Measured the way users have their traces.

Loads labelled real conversations (one source file = one agent; graded pass/fail by their
benchmark) into one temporary MLflow store **without their labels**, each trace tagged with its agent,
domain and a task-split half. For every protocol it runs `trace2eval run` on the traces a user would
have (selected with `--filter` on those tags, so the generator sees nothing else), loads the generated
`scorers.py`, calls every `get_code_scorers()` scorer on each evaluated trace, and compares the flags
with the hidden labels. A conversation counts as flagged when any code scorer returns a failing value
(scorers that report an outlier return a pass: they are not counted). With `--per-turn` every user turn
is its own trace, grouped into conversations by the `mlflow.trace.session` metadata; a conversation
counts as flagged when any of its turns is.

With `--judge-model M` the generated `follows_instructions` judge (the trace read against the agent's own
system prompt) runs on every evaluated trace too, through the model M (`databricks:/ENDPOINT` with
DATABRICKS_HOST/DATABRICKS_TOKEN, `openai:/MODEL`, ...): its flags are counted like a scorer's and the
code scorers' own numbers are printed beside. Without it no LLM is called.

Protocols (each pooled over agents, and reported per agent with counts):
  per-agent             generate on one agent's traces, evaluate on the same traces (what a user runs)
  per-agent-holdout     the same with tasks split in two halves: generate on one, evaluate on the other
  leave-one-domain-out  generate on every agent of the other domains, evaluate on the held-out domain
  labels-20             labels (feedback `reviewer`) on a seeded 20% of each agent's conversations,
                        `--labels reviewer`, evaluated on the other 80%

Usage:
  python benchmarks/detection.py --traces-dir ../shared/traces/dev --loader ../shared/traces/load_traces.py
  python benchmarks/detection.py --protocol per-agent --per-turn --json out.json
  python benchmarks/detection.py --protocol per-agent --judge-model databricks:/databricks-claude-sonnet-4-5
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from trace2eval.generate.scorers import INSTRUCTIONS_JUDGE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACES = REPO.parent / "shared" / "traces"
PROTOCOLS = ("per-agent", "leave-one-domain-out", "labels-20", "per-agent-holdout")
LABEL = "reviewer"
LABELLED_SHARE = 0.2


def source_keys(files: list[Path]) -> dict[str, tuple[str, str]]:
    """{'stem#i': (domain, 'domain:task_id')}, read the way the loader reads the files."""
    out = {}
    for f in files:
        data = json.loads(f.read_text())
        if isinstance(data, dict) and "simulations" in data:
            domain = data["info"]["environment_info"]["domain_name"]
            records = data["simulations"]
        else:
            domain = "airline" if "airline" in f.name else "retail"
            records = data
        for i, r in enumerate(records):
            out[f"{f.stem}#{i}"] = (domain, f"{domain}:{r['task_id']}")
    return out


def load_store(loader: Path, files: list[Path], uri: str, work: Path, per_turn: bool, seed: int) -> tuple[str, dict]:
    """Every file into one experiment, labels hidden, each trace tagged with its agent, domain, half and
    whether it is in the labelled 20%; returns (experiment id, {trace_id: answer})."""
    import mlflow
    from mlflow.entities import AssessmentSource

    answer = work / "answers.json"
    cmd = [sys.executable, str(loader), "--tracking-uri", uri, "--experiment", "bench", "--no-labels"]
    cmd += ["--answer-key", str(answer), *map(str, files)] + (["--per-turn"] if per_turn else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"loading the traces failed:\n{proc.stderr[-3000:]}")
    experiment_id = proc.stdout.strip().splitlines()[-1]
    keys = source_keys(files)
    answers = json.loads(answer.read_text())
    rng = random.Random(seed)
    by_agent: dict[str, list[str]] = defaultdict(list)
    for source in sorted({v["source"] for v in answers.values()}):
        by_agent[source.split("#")[0]].append(source)
    labelled, half = set(), {}
    for agent, sources in by_agent.items():
        tasks = sorted({keys[s][1] for s in sources})
        rng.shuffle(tasks)
        first = set(tasks[: len(tasks) // 2])
        half.update({s: "A" if keys[s][1] in first else "B" for s in sources})
        labelled |= set(rng.sample(sources, max(1, round(LABELLED_SHARE * len(sources)))))
    mlflow.set_tracking_uri(uri)
    reviewer = AssessmentSource(source_type="HUMAN", source_id="benchmark-reviewer")
    for tid, v in answers.items():
        s = v["source"]
        domain = keys[s][0]
        v.update(agent=s.split("#")[0], domain=domain, half=half[s], labelled=s in labelled)
        v.setdefault("session", s)
        for tag, value in (("bench_agent", v["agent"]), ("bench_domain", domain), ("bench_half", half[s])):
            mlflow.set_trace_tag(tid, tag, value)
        if s in labelled:
            mlflow.log_feedback(trace_id=tid, name=LABEL, value=bool(v["success"]), source=reviewer)
    return experiment_id, answers


def generate(uri: str, experiment_id: str, out: Path, where: str, labels: bool, full: bool) -> tuple[Path, float]:
    """A session generated on the traces `where` selects. By default only the tasks that write `scorers.py`
    (initializer, dataset, scorers): the script and validation tasks do not change the code scorers
    unless validation fails, and they cost most of the time. `full`: `trace2eval run`, every task."""
    start = time.monotonic()
    common = ["--tracking-uri", uri, "--quiet", "--filter", where] + (["--labels", LABEL] if labels else [])
    if full:
        cmd = [sys.executable, "-m", "trace2eval", "run", "-e", experiment_id, "--out", str(out), *common]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 and not proc.stdout.strip():
            raise SystemExit(f"trace2eval run failed ({where}):\n{proc.stderr[-3000:]}")
        return Path(proc.stdout.strip().splitlines()[-1]), time.monotonic() - start
    session = out / "session"
    for task in ("initializer", "dataset", "scorers"):
        cmd = [sys.executable, "-m", "trace2eval", "task", task, "--session", str(session)]
        cmd += ["-e", experiment_id, *common] if task == "initializer" else ["--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"trace2eval task {task} failed ({where}):\n{proc.stderr[-3000:]}")
    return session, time.monotonic() - start


def flags_on(session: Path, traces: dict, answers: dict, judge_model: str | None = None) -> dict[str, dict[str, bool]]:
    """{trace_id: {scorer: failed?}}: each generated code scorer called as evaluate() would: a per-trace
    scorer on each trace, a conversation-level one (a `session` parameter) once on each conversation's
    turns, its verdict given to every turn. `judge_model`: the instructions judge on each trace too (a
    judge's error flags nothing)."""
    spec = importlib.util.spec_from_file_location(f"scorers_{session.name}", session / "evaluation" / "scorers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The regression scorers (an `expectations` parameter: the production baseline) compare a candidate
    # with production; on production itself they pass by construction, so they detect nothing here.
    scorers = [
        s for s in module.get_code_scorers() if "expectations" not in inspect.signature(s._original_func).parameters
    ]
    on_sessions = [s for s in scorers if "session" in inspect.signature(s._original_func).parameters]
    on_traces = [s for s in scorers if s not in on_sessions]
    if judge_model:  # none when the traces carry no instructions
        on_traces += [j for j in module.get_judge_scorers(judge_model) if j.name == INSTRUCTIONS_JUDGE]
    failed = lambda fb: getattr(fb, "value", fb) is False or str(getattr(fb, "value", fb)).lower() in ("false", "no")  # noqa: E731
    flags = {
        tid: {s.name: failed(s(inputs=None, outputs=None, trace=trace)) for s in on_traces}
        for tid, trace in traces.items()
    }
    turns: dict[str, list[str]] = {}
    for tid in traces:
        turns.setdefault(answers[tid]["session"], []).append(tid)
    for tids in turns.values():
        for s in on_sessions:
            hit = failed(s(session=[traces[t] for t in tids]))
            for t in tids:
                flags[t][s.name] = hit
    return flags


def conversations(flags: dict[str, dict[str, bool]], answers: dict) -> dict[str, tuple[bool, set[str]]]:
    """{conversation: (success, names of the scorers that flagged any of its traces)}."""
    out: dict[str, tuple[bool, set[str]]] = {}
    for tid, per in flags.items():
        a = answers[tid]
        ok, names = out.get(a["session"], (a["success"], set()))
        out[a["session"]] = (ok, names | {n for n, hit in per.items() if hit})
    return out


def counts(
    convs: dict[str, tuple[bool, set[str]]], name: str | None = None, leave_out: str | None = None
) -> dict[str, int]:
    """Flags on failed and good conversations: by any scorer, by scorer `name`, or by any but `leave_out`."""
    hit = (lambda names: bool(names - {leave_out})) if name is None else (lambda names: name in names)
    return {
        "flag_failed": sum(hit(n) for ok, n in convs.values() if not ok),
        "failed": sum(not ok for ok, _ in convs.values()),
        "flag_good": sum(hit(n) for ok, n in convs.values() if ok),
        "good": sum(ok for ok, _ in convs.values()),
    }


def rate(c: dict[str, int]) -> str:
    r = c["flag_failed"] / c["failed"] if c["failed"] else 0.0
    f = c["flag_good"] / c["good"] if c["good"] else 0.0
    return f"{r:5.0%} ({c['flag_failed']:>3d}/{c['failed']:<3d}) at {f:4.0%} ({c['flag_good']:>3d}/{c['good']:<3d})"


def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b[k] for k in b}


def run_protocol(name, plan, uri, experiment_id, traces, answers, work, full, judge_model=None) -> dict:
    """`plan`: [(agent, generator filter, labels?, {trace ids evaluated})]; pooled per agent."""
    per_agent: dict[str, dict] = {}
    code_only: dict[str, int] = {}
    by_scorer: dict[str, dict[str, int]] = defaultdict(dict)
    seconds = []
    seen: dict[str, tuple[bool, set[str]]] = {}
    for i, (agent, where, labels, evaluated) in enumerate(plan):
        session, gen_s = generate(uri, experiment_id, work / f"{name}-{i}", where, labels, full)
        seconds.append(gen_s)
        if labels:
            meta = json.loads((session / "state" / "analysis.json").read_text()).get("meta_evaluation") or {}
            learned = meta.get("learned") or {}
            cv = learned.get("cross_validation")
            said = (
                f"{learned.get('strategy')}: {', '.join(learned['chosen']) or 'nothing'}; cross-validated on its {cv['bad']}+{cv['good']} "
                f"labels: {cv['flagged_bad']}/{cv['bad']} bad, {cv['flagged_good']}/{cv['good']} good flagged"
                if cv
                else learned.get("reason", meta.get("note", ""))
            )
            print(f"  [{agent}] labels: {said}")
        flags = flags_on(session, {t: traces[t] for t in evaluated}, answers, judge_model)
        convs = conversations(flags, answers)
        seen.update(convs)
        code_only = add(code_only, counts(convs, leave_out=INSTRUCTIONS_JUDGE))
        for target in sorted({answers[t]["agent"] for t in evaluated}):
            mine = {k: v for k, v in convs.items() if k.split("#")[0] == target}
            per_agent[target] = add(per_agent.get(target, {}), counts(mine))
            for scorer in sorted({n for _, ns in mine.values() for n in ns}):
                by_scorer[scorer] = add(
                    by_scorer[scorer], {k: v for k, v in counts(mine, scorer).items() if k.startswith("flag")}
                )
    pooled = {}
    for c in per_agent.values():
        pooled = add(pooled, c)
    print(f"\n## {name}   ({len(plan)} generator runs, {sum(seconds):.0f} s)")
    for agent, c in sorted(per_agent.items()):
        print(f"  {agent:36s} flags failed {rate(c)} false alarms")
    print(f"  {'POOLED':36s} flags failed {rate(pooled)} false alarms")
    if judge_model:
        print(f"  {'POOLED, code scorers only':36s} flags failed {rate(code_only)} false alarms")
    print("  by scorer (flags failed / flags good, pooled):")
    for scorer, c in sorted(by_scorer.items(), key=lambda kv: -kv[1]["flag_failed"]):
        print(
            f"    {scorer:34s} {c['flag_failed']:>3d}/{pooled['failed']:<3d}  {c['flag_good']:>3d}/{pooled['good']:<3d}"
        )
    return {
        "pooled": pooled,
        **({"pooled_code_only": code_only, "judge_model": judge_model} if judge_model else {}),
        "per_agent": per_agent,
        "by_scorer_flags": dict(by_scorer),
        "generator_s": sum(seconds),
        "conversations": {k: {"success": ok, "flagged_by": sorted(ns)} for k, (ok, ns) in sorted(seen.items())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces-dir", type=Path, default=DEFAULT_TRACES / "dev")
    p.add_argument("--loader", type=Path, default=DEFAULT_TRACES / "load_traces.py")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "all"], default="all")
    p.add_argument("--per-turn", action="store_true", help="one trace per user turn, grouped by session")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full-run", action="store_true", help="generate with `trace2eval run` (validation too): slower")
    p.add_argument("--json", type=Path, help="also write the results here, with each conversation's flags")
    p.add_argument("--judge-model", help="also run the follows_instructions judge through this model (LLM calls)")
    a = p.parse_args(argv)
    files = sorted(a.traces_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"Error: no conversation files in {a.traces_dir} — pass --traces-dir")
    if not a.loader.exists():
        raise SystemExit(f"Error: no loader at {a.loader} — pass --loader path/to/load_traces.py")
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    import mlflow

    protocols = PROTOCOLS if a.protocol == "all" else (a.protocol,)
    results: dict = {"per_turn": a.per_turn, "seed": a.seed}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="t2e-detection-") as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'traces.db'}"
        experiment_id, answers = load_store(a.loader, files, uri, work, a.per_turn, a.seed)
        load_s = time.monotonic() - start
        mlflow.set_tracking_uri(uri)
        # Read once per run: every protocol scores the same traces.
        traces = {
            t.info.trace_id: t
            for t in mlflow.search_traces(locations=[experiment_id], max_results=100_000, return_type="list")
        }
        agents = sorted({v["agent"] for v in answers.values()})
        domains = sorted({v["domain"] for v in answers.values()})
        ids = lambda **kw: {t for t, v in answers.items() if all(v[k] == x for k, x in kw.items())}  # noqa: E731
        print(
            f"{len(answers)} traces of {len({v['session'] for v in answers.values()})} conversations, "
            f"{len(agents)} agents, domains {', '.join(domains)} (loaded in {load_s:.0f} s)"
        )
        for name in protocols:
            plan = []
            if name == "per-agent":
                plan = [(ag, f"tags.bench_agent = '{ag}'", False, ids(agent=ag)) for ag in agents]
            elif name == "per-agent-holdout":
                for ag in agents:
                    for h, other in (("A", "B"), ("B", "A")):
                        where = f"tags.bench_agent = '{ag}' AND tags.bench_half = '{h}'"
                        if ids(agent=ag, half=h) and ids(agent=ag, half=other):
                            plan.append((ag, where, False, ids(agent=ag, half=other)))
            elif name == "leave-one-domain-out":
                if len(domains) < 2:
                    print("\n## leave-one-domain-out: skipped, the traces hold one domain")
                    continue
                plan = [(d, f"tags.bench_domain != '{d}'", False, ids(domain=d)) for d in domains]
            elif name == "labels-20":
                plan = [(ag, f"tags.bench_agent = '{ag}'", True, ids(agent=ag, labelled=False)) for ag in agents]
            results[name] = run_protocol(
                name, plan, uri, experiment_id, traces, answers, work, a.full_run, a.judge_model
            )
            if a.json:  # after each protocol: a long run interrupted keeps what it measured
                a.json.write_text(json.dumps(results, indent=2))
    results["total_s"] = round(time.monotonic() - start)
    print(f"\ntotal {results['total_s']} s")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
