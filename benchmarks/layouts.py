"""Are the features right on the span layouts real frameworks write? Counted per layout.

Each framework (OpenAI and Anthropic SDK loops, LangChain's `create_agent`, a tool-calling
`ResponsesAgent` after Databricks' template, DSPy ReAct) plays the scripted support conversation
of tests/traces/frameworks/script.py against a loopback model server, with MLflow autologging,
into a temporary sqlite store. The features of its traces are compared with what the script did
(tests/traces/frameworks/truth.py: tool calls, writes, tool errors, unconfirmed and ungrounded
writes, user turns, requests, answers, LLM calls, tokens).

`--baseline REF` also reads the same traces with the `features.py` of a git revision (one from
before `layouts.py` existed, which is standalone), to show what changed.

Usage:
  python benchmarks/layouts.py
  python benchmarks/layouts.py --baseline b14c209 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "traces"))
sys.path.insert(0, str(REPO / "tests"))  # the loopback helpers the framework servers use


def baseline_features(ref: str, workdir: Path):
    """`trace_features` from features.py at a git revision."""
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:src/trace2eval/traces/features.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = workdir / "baseline_features.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_features", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.trace_features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git revision whose features.py to compare with")
    parser.add_argument("--json", type=Path, help="write the verdicts here")
    args = parser.parse_args()

    import mlflow
    from frameworks import agents, truth
    from frameworks.servers import ModelServer

    from trace2eval.traces.features import trace_features

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old_features = baseline_features(args.baseline, Path(tmp)) if args.baseline else None
        mlflow.set_tracking_uri(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        with ModelServer() as server:
            for name in agents.LAYOUTS:
                n_requests, n_usage = len(server.requests), len(server.usage)
                started = time.time()
                exp = agents.run(name, server, Path(tmp) / "artifacts")
                seconds = time.time() - started
                traces = sorted(
                    mlflow.search_traces(locations=[exp], return_type="list"), key=lambda t: t.info.request_time
                )
                calls, tokens = len(server.requests) - n_requests, sum(a + b for a, b in server.usage[n_usage:])
                results[name] = {
                    "traces": len(traces),
                    "seconds": round(seconds, 1),
                    "now": truth.grade(name, [trace_features(t) for t in traces], calls, tokens),
                }
                if old_features is not None:
                    results[name]["baseline"] = truth.grade(name, [old_features(t) for t in traces], calls, tokens)

    print(f"machine: {platform.platform()}, Python {platform.python_version()}, mlflow {mlflow.__version__}")
    for name, r in results.items():
        now = r["now"]
        right = sum(v["ok"] for v in now.values())
        line = f"\n{name}: {r['traces']} traces; features right {right}/{len(now)}"
        if "baseline" in r:
            line += f" (baseline {sum(v['ok'] for v in r['baseline'].values())}/{len(now)})"
        print(line)
        for feature, v in now.items():
            before = ""
            if "baseline" in r:
                b = r["baseline"][feature]
                before = f"  | baseline {'right' if b['ok'] else 'wrong'}: {json.dumps(b['got'])[:70]}"
            verdict = "right" if v["ok"] else f"WRONG (want {json.dumps(v['want'])[:60]})"
            print(f"  {feature:20s} {verdict:6s} got {json.dumps(v['got'])[:60]}{before}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
