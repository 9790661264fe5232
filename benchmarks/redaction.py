"""What redaction costs per trace digest, and how much of it the fast path saves.

Digests the sample agent's traces (written into a temporary sqlite store), then times, best of
R repeats: the fast "could this contain a secret?" test on each serialized digest, and the full
`redact` walk. Prints per-digest milliseconds and the machine it ran on.

Usage:
  python benchmarks/redaction.py [-n 500] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=500, help="traces to digest")
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args(argv)

    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()
    from mlflow import MlflowClient

    from trace2eval.demo.seed import seed_experiment
    from trace2eval.traces.digest import digest_trace
    from trace2eval.traces.redact import contains_secret, redact

    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'mlflow.db')}"
        experiment = seed_experiment(uri, n=args.n)
        client = MlflowClient(uri)
        traces, token = [], None
        while True:
            page = client.search_traces(locations=[experiment], max_results=500, page_token=token)
            traces += list(page)
            token = page.token
            if not token:
                break
        digests = [digest_trace(t) for t in traces]
    texts = [json.dumps(d, default=str) for d in digests]

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for item in fn():
                pass
            times.append(time.perf_counter() - start)
        return min(times) / len(digests) * 1000

    fast = best(lambda: (contains_secret(t) for t in texts))
    full = best(lambda: (redact(d) for d in digests))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"digests: {len(digests)} (sample agent), best of {args.repeats}")
    print(f"fast secret test per digest: {fast:.4f} ms")
    print(f"full redact walk per digest: {full:.4f} ms")
    print(f"digests the fast test let through to the walk: {sum(contains_secret(t) for t in texts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
