"""Are the features right on the span layouts real frameworks write? Counted per layout.

Each framework (OpenAI and Anthropic SDK loops, the latter also streamed, LangChain's `create_agent` and LangGraph's
`create_react_agent`, invoked and streamed behind a chat endpoint, a tool-calling `ResponsesAgent`
after Databricks' template, DSPy ReAct) plays the scripted support conversation
of tests/traces/frameworks/script.py against a loopback model server, with MLflow autologging,
into a temporary sqlite store. The features of its traces are compared with what the script did
(tests/traces/frameworks/truth.py: tool calls, writes, tool errors, unconfirmed and ungrounded
writes, user turns, requests, answers, LLM calls, tokens).

`--baseline REF` also reads the same traces with the `features.py` (and `layouts.py`, once it
exists) of a git revision, to show what changed.

`--markdown` prints the two tables of benchmarks/README.md ("Span layouts").

Usage:
  python benchmarks/layouts.py
  python benchmarks/layouts.py --baseline b14c209 --markdown --json out.json
"""

from __future__ import annotations

import argparse
import importlib
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
    """`trace_features` from features.py at a git revision (with the layouts.py beside it, if any)."""
    package = workdir / "baseline_trace2eval"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("features.py", "layouts.py"):
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{ref}:src/trace2eval/traces/{name}"], capture_output=True, text=True
        )
        if shown.returncode == 0:
            (package / name).write_text(shown.stdout)
        elif name == "features.py":
            raise SystemExit(f"Error: no src/trace2eval/traces/features.py at {ref!r} — pass a revision of this repo")
    sys.path.insert(0, str(workdir))
    return importlib.import_module("baseline_trace2eval.features").trace_features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git revision whose features.py to compare with")
    parser.add_argument("--json", type=Path, help="write the verdicts here")
    parser.add_argument("--markdown", action="store_true", help="also print the README tables")
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
    if args.markdown:
        print()
        print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


def markdown(results: dict[str, dict]) -> str:
    """The README tables: right/wrong per layout (counts), then feature by feature (now / before)."""
    baseline = all("baseline" in r for r in results.values())

    def wrong(verdicts: dict) -> str:
        return ", ".join(k for k, v in verdicts.items() if not v["ok"]) or "–"

    def right(verdicts: dict) -> str:
        return f"{sum(v['ok'] for v in verdicts.values())}/{len(verdicts)}"

    lines = [
        "| layout | traces | right now | right before | wrong now | wrong before |",
        "|---|---:|---:|---:|---|---|",
    ]
    if not baseline:
        lines = ["| layout | traces | right | wrong |", "|---|---:|---:|---|"]
    for name, r in results.items():
        label = LABELS.get(name, name)
        if baseline:
            lines.append(
                f"| {label} | {r['traces']} | {right(r['now'])} | {right(r['baseline'])} "
                f"| {wrong(r['now'])} | {wrong(r['baseline'])} |"
            )
        else:
            lines.append(f"| {label} | {r['traces']} | {right(r['now'])} | {wrong(r['now'])} |")
    names = list(results)
    lines += ["", "| feature | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for feature in next(iter(results.values()))["now"]:
        cells = []
        for name in names:
            now = "right" if results[name]["now"][feature]["ok"] else "**wrong**"
            if baseline:
                now += " / " + ("right" if results[name]["baseline"][feature]["ok"] else "wrong")
            cells.append(now)
        lines.append(f"| {feature} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LABELS = {
    "openai": "bare `mlflow.openai.autolog()` loop",
    "anthropic": "bare `mlflow.anthropic.autolog()` loop",
    "anthropic_streamed": "bare `mlflow.anthropic.autolog()` loop, `stream=True`",
    "langgraph": "LangChain `create_agent` (LangGraph, checkpointer), `mlflow.langchain.autolog()`",
    "langgraph_react": "LangGraph `create_react_agent` (no checkpointer: the caller sends the whole history, "
    "ToolMessages included), `mlflow.langchain.autolog()`",
    "langgraph_streamed": "LangChain `create_agent` streamed (`streaming=True`, no usage) behind a traced chat "
    'endpoint yielding the text of `.stream(stream_mode="messages")`, `mlflow.langchain.autolog()`',
    "langgraph_astream": "LangGraph `create_react_agent` streamed (`stream_usage=True`) behind a traced async "
    'endpoint yielding the message chunks of `astream_events(version="v2")`, `mlflow.langchain.autolog()`',
    "responses_agent": "tool-calling `ResponsesAgent` (Databricks template shape)",
    "dspy": "DSPy `ReAct`, `mlflow.dspy.autolog()`",
    "dspy_history": "DSPy `ReAct` with a `history: dspy.History` input, `mlflow.dspy.autolog()`",
}


if __name__ == "__main__":
    sys.exit(main())
