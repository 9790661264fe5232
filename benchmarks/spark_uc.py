"""Time the Spark engine (`--source uc:...`) against the local engine on the same traces.

Copies an MLflow experiment into Unity-Catalog-layout tables in a local Spark warehouse (OTel
spans + trace metadata, parquet), then times:
  (a) the local engine's initializer analysis, reading the experiment through MLflow;
  (b) the Spark engine's analysis of the tables, with every trace in the sample (and checks that
      its analysis equals (a), apart from the note on how the population was read);
  (c) the Spark engine with a stratified sample of --sample traces (population sections still
      over every trace).
Local mode on a small machine measures overheads and correctness, not cluster throughput.

Usage:
  python benchmarks/spark_uc.py --tracking-uri sqlite:///bench.db --experiment-id 1 [--sample 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment-id", required=True)
    p.add_argument("--sample", type=int, default=1000, help="max traces for the sampled run")
    p.add_argument("--warehouse", default=None, help="local Spark warehouse (default: a temporary folder)")
    p.add_argument("--cores", type=int, default=2)
    args = p.parse_args()

    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()
    from trace2eval.config import SessionConfig
    from trace2eval.spark.engine import analyze
    from trace2eval.spark.export import export_experiment
    from trace2eval.spark.location import UCTraceLocation
    from trace2eval.spark.session import local_session
    from trace2eval.traces.sources import MlflowTraceSource

    warehouse = args.warehouse or tempfile.mkdtemp(prefix="trace2eval-warehouse-")
    t = time.monotonic()
    spark = local_session(warehouse, cores=args.cores, shuffle_partitions=2 * args.cores)
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark {spark.version} local[{args.cores}] up in {time.monotonic() - t:.1f} s", flush=True)
    location = UCTraceLocation.parse("uc:bench.traces.agent")
    t = time.monotonic()
    n = export_experiment(spark, args.tracking_uri, args.experiment_id, location)
    print(f"exported {n} traces to OTel tables in {time.monotonic() - t:.1f} s", flush=True)

    def timed(label, fn):
        start = time.monotonic()
        result = json.loads(json.dumps(fn(), default=str))
        print(f"{label}: {time.monotonic() - start:.1f} s", flush=True)
        return result

    base = {"experiment_id": args.experiment_id, "tracking_uri": args.tracking_uri}
    local = timed(
        "(a) local engine, every trace",
        lambda: MlflowTraceSource(SessionConfig(**base, max_traces=None)).analyze().analysis,
    )
    uc = SessionConfig(**base, source=str(location), max_traces=None)
    timed("(b) spark engine, every trace (cold)", lambda: analyze(uc).analysis)
    full = timed("(b) spark engine, every trace (warm)", lambda: analyze(uc).analysis)
    local["population"].pop("note")
    full["population"].pop("note")
    print(f"    equal to the local engine: {full == local}")
    if full != local:
        print("    differing sections:", sorted(k for k in set(full) | set(local) if full.get(k) != local.get(k)))
    sampled = timed(
        f"(c) spark engine, sample of {args.sample}",
        lambda: analyze(SessionConfig(**base, source=str(location), max_traces=args.sample)).analysis,
    )
    print(f"    {sampled['sample']}")
    same = [
        s
        for s in ("agent", "trace_summary", "error_patterns", "tool_usage", "span_types", "request_shapes")
        if sampled[s] == full[s]
    ]
    print(f"    population sections equal to the full run: {len(same)}/6")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver peak RSS (Python process): {rss:.0f} MB")
    spark.stop()


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    main()
