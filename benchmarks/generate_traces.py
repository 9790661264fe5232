"""Write N realistic agent traces into an MLflow tracking store, as fast as MLflow's APIs allow.

Three agent shapes, mixed: a routing supervisor with sub-agents, a tool-using support agent in
multi-turn conversations, and a retrieval agent. Errors, loops (the same tool call repeated) and
slow calls are mixed in at known rates, printed at the end with the write rate.

Traces are built whole in memory and written with the tracking store's own two calls, the ones
MLflow's exporter makes: `start_trace` per trace and one `log_spans` per batch of traces (the
fluent API manages ~10 traces/s and, with async logging, silently drops traces under load).
Several worker processes write in parallel.

Usage:
  python benchmarks/generate_traces.py --tracking-uri sqlite:///bench.db -n 10000
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import random
import sys
import time
import uuid

SHAPES = {"supervisor": 0.4, "support": 0.4, "rag": 0.2}
RATES = {"error": 0.06, "loop": 0.05, "slow": 0.04, "unconfirmed_write": 0.05}
QUESTIONS = {
    "supervisor": [
        "How is the pipeline in {r} by segment?",
        "Inventory of {p} in {w}?",
        "Delayed shipments of {p} to {w}?",
        "Top deals in {r} this quarter?",
        "Do we have enough {p} for the {r} pipeline?",
    ],
    "support": [
        "I want to cancel order #{n}",
        "Where is my package {n}?",
        "Change the address on order {n}",
        "Refund order {n} please",
        "My card was charged twice for order {n}",
    ],
    "rag": [
        "What is the return policy for {p}?",
        "How do I reset my {p}?",
        "Warranty terms for {p} bought in {r}?",
        "Is {p} compatible with {w} adapters?",
    ],
}
FILL = {
    "r": ["EMEA", "APAC", "Americas"],
    "p": ["widgets", "sensors", "cables", "routers"],
    "w": ["Reno", "Rotterdam", "Singapore"],
}


def _b64(n_bytes: int, rng: random.Random) -> str:
    return base64.b64encode(rng.getrandbits(8 * n_bytes).to_bytes(n_bytes, "big")).decode()


class TraceBuilder:
    """Builds one trace's TraceInfo and span dicts (MLflow's own span JSON layout)."""

    def __init__(self, experiment_id: str, rng: random.Random):
        self.experiment_id = experiment_id
        self.rng = rng

    def build(self, start_ns: int):
        from mlflow.entities import Span, TraceInfo, TraceLocation, TraceState

        rng = self.rng
        shape = rng.choices(list(SHAPES), weights=list(SHAPES.values()))[0]
        flags = {k: rng.random() < v for k, v in RATES.items()}
        trace_id = "tr-" + uuid.UUID(int=rng.getrandbits(128)).hex
        otel_trace_id = _b64(16, rng)
        question = rng.choice(QUESTIONS[shape]).format(
            n=rng.randint(1000, 99999), **{k: rng.choice(v) for k, v in FILL.items()}
        )
        spans: list[dict] = []
        t = start_ns
        root_id = _b64(8, rng)

        def span(name, kind, parent, t0, ms, inputs, outputs, error=None, attrs=None):
            attributes = {
                "mlflow.traceRequestId": json.dumps(trace_id),
                "mlflow.spanType": json.dumps(kind),
                "mlflow.spanInputs": json.dumps(inputs),
                "mlflow.spanOutputs": json.dumps(outputs),
                **{k: json.dumps(v) for k, v in (attrs or {}).items()},
            }
            events = []
            if error:
                events.append(
                    {
                        "name": "exception",
                        "time_unix_nano": t0 + ms * 1_000_000,
                        "attributes": {"exception.type": error[0], "exception.message": error[1]},
                    }
                )
            sid = _b64(8, rng)
            spans.append(
                {
                    "trace_id": otel_trace_id,
                    "span_id": sid,
                    "parent_span_id": parent,
                    "name": name,
                    "start_time_unix_nano": t0,
                    "end_time_unix_nano": t0 + ms * 1_000_000,
                    "events": events,
                    "status": {"code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK", "message": ""},
                    "attributes": attributes,
                    "links": [],
                }
            )
            return sid, t0 + ms * 1_000_000

        def llm(parent, t0, messages, content, tool_calls=None):
            ms = rng.randint(300, 2500) * (8 if flags["slow"] and rng.random() < 0.3 else 1)
            return span(
                "llm",
                "CHAT_MODEL",
                parent,
                t0,
                ms,
                {"messages": messages},
                {"content": content, "tool_calls": tool_calls or []},
                attrs={
                    "mlflow.chat.tokenUsage": {
                        "input_tokens": ms,
                        "output_tokens": ms // 10,
                        "total_tokens": ms + ms // 10,
                    }
                },
            )

        error = None
        if shape == "supervisor":
            _, t = llm(root_id, t, [{"role": "user", "content": question}], "routing")
            targets = ["sales_agent"] if "pipeline" in question or "deals" in question else ["supply_agent"]
            if rng.random() < 0.2:
                targets = ["sales_agent", "supply_agent"]
            for target in targets:
                sid, t_end = span(
                    target, "TOOL", root_id, t, rng.randint(500, 4000), {"question": question}, {"answer": "table"}
                )
                llm(sid, t, [{"role": "user", "content": question}], "SELECT ...")
                t = t_end
            answer = "Here is the breakdown:\n| a | b |\n|---|---|\n| 1 | 2 |"
        elif shape == "support":
            turns = [question, "My email is user@example.com", "yes, go ahead"]
            for turn in turns[: rng.randint(2, 3)]:
                _, t = llm(root_id, t, [{"role": "user", "content": turn}], "Let me check.")
                _, t = span("search_kb", "TOOL", root_id, t, rng.randint(50, 400), {"q": turn}, {"hits": 3})
            repeats = 3 if flags["loop"] else 1
            for _ in range(repeats):
                _, t = span(
                    "get_order",
                    "TOOL",
                    root_id,
                    t,
                    rng.randint(50, 400),
                    {"order_id": question[-5:]},
                    {"status": "pending"},
                )
            if not flags["unconfirmed_write"]:
                _, t = llm(root_id, t, [{"role": "user", "content": "yes please do it"}], "Done.")
            _, t = span(
                "update_order", "TOOL", root_id, t, rng.randint(100, 800), {"order_id": question[-5:]}, {"ok": True}
            )
            answer = "Your order has been updated."
        else:
            sid, t = span(
                "search_docs",
                "RETRIEVER",
                root_id,
                t,
                rng.randint(100, 900),
                {"query": question},
                [{"page_content": "Policy text " * 20, "metadata": {"doc_uri": "kb/policy"}}],
            )
            _, t = llm(root_id, t, [{"role": "user", "content": question}], "According to the policy ...")
            answer = "According to our policy, returns are accepted within 30 days."
        if flags["error"]:
            error = ("TimeoutError", f"upstream call exceeded {rng.randint(20, 40)} s")
            _, t = span("external_api", "TOOL", root_id, t, 30_000, {"q": question}, None, error=error)
            answer = None
        end = t + 5_000_000
        spans.insert(
            0,
            {
                "trace_id": otel_trace_id,
                "span_id": root_id,
                "parent_span_id": None,
                "name": f"{shape}_agent",
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": end,
                "events": [
                    {
                        "name": "exception",
                        "time_unix_nano": end,
                        "attributes": {"exception.type": error[0], "exception.message": error[1]},
                    }
                ]
                if error
                else [],
                "status": {"code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK", "message": ""},
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace_id),
                    "mlflow.spanType": json.dumps("AGENT"),
                    "mlflow.spanInputs": json.dumps({"query": question}),
                    "mlflow.spanOutputs": json.dumps({"response": answer} if answer else None),
                },
                "links": [],
            },
        )
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=start_ns // 1_000_000,
            execution_duration=(end - start_ns) // 1_000_000,
            state=TraceState.ERROR if error else TraceState.OK,
            request_preview=question,
            response_preview=json.dumps({"response": answer})[:1000] if answer else None,
            trace_metadata={"mlflow.trace_schema.version": "3"},
            tags={"mlflow.traceName": f"{shape}_agent", "bench.shape": shape},
        )
        return info, [Span.from_dict(s) for s in spans], shape, flags


def _worker(args) -> tuple[int, dict]:
    uri, experiment_id, count, seed, start_ns, batch = args
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
    from mlflow import MlflowClient

    store = MlflowClient(uri)._tracking_client.store
    builder = TraceBuilder(experiment_id, random.Random(seed))
    counts = {k: 0 for k in list(RATES) + list(SHAPES)}
    pending = []
    for i in range(count):
        info, spans, shape, flags = builder.build(start_ns + i * 7_000_000_000)
        store.start_trace(info)
        pending.extend(spans)
        counts[shape] += 1
        for k, v in flags.items():
            counts[k] += v
        if (i + 1) % batch == 0:
            store.log_spans(experiment_id, pending)
            pending = []
    if pending:
        store.log_spans(experiment_id, pending)
    return count, counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment", default="bench")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
    import mlflow

    mlflow.set_tracking_uri(a.tracking_uri)
    experiment_id = mlflow.set_experiment(a.experiment).experiment_id
    share = [a.n // a.workers + (1 if i < a.n % a.workers else 0) for i in range(a.workers)]
    base = (int(time.time()) - 30 * 86400) * 1_000_000_000
    jobs = [
        (
            a.tracking_uri,
            experiment_id,
            share[i],
            a.seed * 1000 + i,
            base + i * 1_000_000 + sum(share[:i]) * 7_000_000_000,
            a.batch,
        )
        for i in range(a.workers)
    ]
    start = time.monotonic()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = pool.map(_worker, jobs)
    seconds = time.monotonic() - start
    total = {k: sum(r[1][k] for r in results) for k in results[0][1]}
    written = sum(r[0] for r in results)
    print(
        f"wrote {written} traces in {seconds:.1f} s: {written / seconds:.1f} traces/s ({a.workers} processes)",
        file=sys.stderr,
    )
    print("shapes: " + ", ".join(f"{k} {total[k]}" for k in SHAPES), file=sys.stderr)
    print(
        "mixed in: " + ", ".join(f"{k} {total[k]} ({total[k] / written:.1%}, target {RATES[k]:.0%})" for k in RATES),
        file=sys.stderr,
    )
    print(experiment_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
