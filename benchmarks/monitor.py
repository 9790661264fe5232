"""Production monitors on real conversations: what registers, whether it says what the suite says, and
what a real open-source server runs.

On a fresh sqlite store loaded with the given conversations (`load_traces.py`), this:
  1. runs `trace2eval run` (deterministic engine) to a validated suite;
  2. runs `trace2eval monitor` on it (`sessions.monitor.sync`): how many of the suite's scorers
     were registered, and why each other one was not (skipped, or refused at start);
  3. loads every registered code scorer back with `get_scorer` in a fresh process and runs it beside
     the suite's own scorer on every dataset row and on every trace of the experiment, counting the
     traces where value or rationale differ;
  4. (unless --no-server) starts a real `mlflow server` on 127.0.0.1 (job runner on), gives it an AI
     Gateway endpoint (provider openai) whose api_base is a loopback chat-completions judge that
     answers from the prompt alone (tests/judge_server.py), and runs `trace2eval monitor --judges
     --judge-model gateway:/judge` against a fresh experiment there. Then it replays every loaded
     conversation as a NEW production trace (same spans, shifted so that the trace ends when it is
     logged, --pace seconds apart), waits until the server's job runner has attached every started
     judge's assessment, and reports: the judges the server ran, server verdicts vs the suite's own
     judges run here on the same traces (counts), and the lag from logging a trace to its assessment
     (median/max). The server scores a trace once its completion buffer (--buffer, MLflow's default
     300 s) has passed since the trace STARTED, on a once-a-minute schedule: the lag is reported from
     logging, and from the end of the buffer (what the schedule and the scoring add).

MLflow's open-source store (3.17) refuses to start any scorer whose model is not a gateway:/
endpoint, so the code scorers are registered there but never run: their lag is not measurable.

Usage:
  python benchmarks/monitor.py --traces ../shared/traces/load_traces.py ../shared/traces/dev/*.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="conversation files for load_traces.py")
    p.add_argument("--traces", type=Path, required=True, help="path of load_traces.py")
    p.add_argument("--limit", type=int, help="load at most this many conversations")
    p.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    p.add_argument("--no-server", action="store_true", help="skip step 4 (the real server running the judges)")
    p.add_argument("--buffer", type=int, default=300, help="the server's trace completion buffer, seconds")
    p.add_argument("--pace", type=float, default=0.5, help="seconds between two replayed production traces")
    p.add_argument("--wait", type=int, default=1200, help="give up waiting for the server's verdicts after this")
    args = p.parse_args()

    folder = (args.keep or Path(tempfile.mkdtemp(prefix="trace2eval-monitor-bench-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_MODEL_CATALOG_URI": "", "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    start = time.monotonic()
    load = [sys.executable, str(args.traces.resolve()), "--tracking-uri", uri, "--experiment", "monitored"]
    load += ["--no-labels", *(str(f.resolve()) for f in args.files)] + (
        ["--limit", str(args.limit)] if args.limit else []
    )
    # In the work folder: an experiment created without an artifact location keeps its artifacts
    # in ./mlruns of the current folder.
    out = subprocess.run(load, capture_output=True, text=True, env=env, check=True, cwd=folder).stdout
    experiment_id = out.strip().splitlines()[-1].strip()
    loaded_s = time.monotonic() - start

    run = [sys.executable, "-m", "trace2eval", "run", "-e", experiment_id, "--tracking-uri", uri]
    run += ["--out", str(folder / "sessions"), "--max-traces", "0", "-q"]
    proc = subprocess.run(run, capture_output=True, text=True, env=env, cwd=folder)
    if proc.returncode != 0:
        sys.exit(f"trace2eval run failed:\n{proc.stderr[-3000:]}")
    session = Path(proc.stdout.strip().splitlines()[-1])

    from trace2eval.env import apply_safe_mlflow_env

    apply_safe_mlflow_env()
    from trace2eval.sessions import monitor

    target = monitor.resolve(session)
    specs = monitor.load_suite_specs(target)
    sync_start = time.monotonic()
    result = monitor.sync(target, 1.0)
    sync_s = time.monotonic() - sync_start
    code = [n for n in result.identity.get("compared", {})]
    every_start = time.monotonic()
    every = monitor.identity(target, code, all_traces=True)
    every_s = time.monotonic() - every_start
    registered = monitor.registered(target)

    report = {
        "conversations_loaded": None,
        "traces": every.get("rows"),
        "load_seconds": round(loaded_s, 1),
        "suite_scorers": len(specs),
        "code_scorers": sum(1 for s in specs if s.is_code),
        "judges": sum(1 for s in specs if not s.is_code),
        "registered": len(registered),
        "started": sum(1 for r in registered if r.running),
        "not_started": result.not_started,
        "skipped": result.skipped,
        "identity_dataset_rows": {
            "rows": result.identity.get("rows"),
            "rows_with_trace": result.identity.get("rows_with_trace"),
            "compared": result.identity.get("compared"),
            "differ": {k: len(v) for k, v in result.identity.get("differ", {}).items()},
        },
        "identity_every_trace": {
            "traces": every.get("rows"),
            "compared": every.get("compared"),
            "suite_failed": every.get("suite_failed"),
            "differ": {k: len(v) for k, v in every.get("differ", {}).items()},
            "seconds": round(every_s, 1),
        },
        "sync_seconds": round(sync_s, 1),
        "code_scorer_lag_note": "not measurable on MLflow's open-source store: it refuses to start scorers that "
        "do not use a gateway:/ model, so no code scorer runs on new traces there (see not_started)",
        "session": str(session),
    }
    report["conversations_loaded"] = report["traces"]
    if not args.no_server:
        report["server"] = on_server(folder, session, uri, experiment_id, args)
    print(json.dumps(report, indent=2))
    print(
        f"\n{report['registered']} of {report['suite_scorers']} scorers registered "
        f"({report['code_scorers']} code scorers, {report['judges']} judges), {report['started']} started; "
        f"registered form vs suite: {sum((every.get('compared') or {}).values())} verdicts on {every.get('rows')} traces, "
        f"{sum(report['identity_every_trace']['differ'].values())} differ"
    )
    if "server" in report:
        s = report["server"]
        lag, net = s["lag_seconds"], s["lag_after_buffer_seconds"]
        print(
            f"real server ({s['machine']}): {len(s['judges_started'])} judges started "
            f"({', '.join(s['judges_started'])}), {s['code_scorers_not_started']} code scorers registered but not "
            f"started; {s['traces_scored']} of {s['traces_replayed']} replayed traces scored by every judge, "
            f"{s['server_assessments']} server verdicts, {s['agree']} equal the suite's own judges here, "
            f"{s['disagree']} differ, {s['server_errors']} server errors; lag from logging to assessment "
            f"(buffer {s['buffer_seconds']} s): median {lag['median']} s, max {lag['max']} s over {lag['n']} "
            f"verdicts; from the end of the buffer (trace start + buffer): median {net['median']} s, max {net['max']} s"
        )


def _verdict(prompt: str) -> str:
    """The loopback judge's answer, from the prompt alone: the same prompt gets the same verdict."""
    return "no" if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 == 0 else "yes"


def _replay(mlflow, trace, experiment_id: str) -> tuple[str, float]:
    """Log `trace` again as a new production trace: same spans, shifted to end now. Returns its id
    and its start (the time the server's completion buffer counts from), in seconds."""
    by_id = {s.span_id: s for s in trace.data.spans}

    def depth(span) -> int:
        n = 0
        while span.parent_id in by_id:
            span, n = by_id[span.parent_id], n + 1
        return n

    # Parents first: a child may start in the same nanosecond as its parent.
    spans = sorted(trace.data.spans, key=lambda s: (depth(s), s.start_time_ns))
    shift = time.time_ns() - max(s.end_time_ns for s in spans)
    live = {}
    for span in spans:
        parent = live.get(span.parent_id)
        attributes = {k: v for k, v in span.attributes.items() if not k.startswith("mlflow.") or "tokenUsage" in k}
        live[span.span_id] = mlflow.start_span_no_context(
            name=span.name,
            span_type=span.span_type,
            inputs=span.inputs,
            attributes=attributes,
            parent_span=parent,
            start_time_ns=span.start_time_ns + shift,
            experiment_id=experiment_id if parent is None else None,
        )
    from mlflow.entities import SpanEvent

    for span in reversed(spans):  # the deepest end first, the root last (that logs the trace)
        new = live[span.span_id]
        for event in span.events:
            new.add_event(SpanEvent(event.name, event.timestamp + shift, event.attributes))
        new.end(outputs=span.outputs, status=span.status, end_time_ns=span.end_time_ns + shift)
    return live[spans[0].span_id].trace_id, (min(s.start_time_ns for s in spans) + shift) / 1e9


def _spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "max": None, "min": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


def on_server(folder: Path, session: Path, source_uri: str, source_experiment: str, args) -> dict:
    """Step 4: the suite's judges run by a real `mlflow server` on newly logged traces."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities.gateway_endpoint import GatewayEndpointModelConfig, GatewayModelLinkageType
    from mlflow.tracking._tracking_service.utils import _get_store

    import mlflow_server
    from judge_server import JudgeServer

    from trace2eval.sessions import monitor
    from trace2eval.sessions.files import read_json, write_json

    source = MlflowClient(source_uri)
    originals, token = [], None
    while True:
        page = source.search_traces(locations=[source_experiment], max_results=200, page_token=token)
        originals += list(page)
        token = page.token
        if not token:
            break

    judge = JudgeServer(by_prompt=_verdict)
    server_dir = folder / "server"
    server_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        monitor.JOB_EXECUTION_ENV: "true",
        monitor.CUSTOM_SCORERS_ENV: "true",
        "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
        monitor.TRACE_BUFFER_ENV: str(args.buffer),
    }
    proc, url = mlflow_server.start(server_dir, env)
    before = mlflow.get_tracking_uri()
    try:
        store = _get_store(url)
        secret = store.create_gateway_secret(
            secret_name="judge-key",
            secret_value={"api_key": "unused"},
            provider="openai",
            auth_config={"api_base": f"{judge.url}/v1"},
        )
        model_def = store.create_gateway_model_definition(
            name="judge-model", secret_id=secret.secret_id, provider="openai", model_name="gpt-4o-mini"
        )
        store.create_gateway_endpoint(
            name="judge",
            model_configs=[
                GatewayEndpointModelConfig(
                    model_definition_id=model_def.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY
                )
            ],
        )
        model = "gateway:/judge"
        experiment_id = MlflowClient(url).create_experiment("monitored-live")
        live = folder / "live-session"
        shutil.copytree(session, live)
        config = read_json(live / "state" / "config.json")
        config.update(tracking_uri=url, experiment_id=experiment_id)
        write_json(live / "state" / "config.json", config)
        target = monitor.resolve(live)
        result = monitor.sync(target, 1.0, judges=True, judge_model=model, check_identity=False)
        running = sorted(r.name for r in monitor.registered(target) if r.running)
        judges = [n[len(monitor.PREFIX) :] for n in running]
        specs = {s.name: s for s in monitor.load_suite_specs(target)}
        assert all(not specs[n].is_code for n in judges), running

        mlflow.set_tracking_uri(url)
        logged: dict[str, float] = {}
        started_at: dict[str, float] = {}
        replay_start = time.time()
        for trace in originals:
            trace_id, started_at[trace_id] = _replay(mlflow, trace, experiment_id)
            logged[trace_id] = time.time()  # synchronous export: the trace is on the server now
            time.sleep(args.pace)
        replay_s = time.time() - replay_start

        wanted = {monitor.PREFIX + n for n in judges}
        client = MlflowClient(url)
        deadline = time.time() + args.wait
        while True:
            infos, token = [], None
            while True:
                page = client.search_traces(
                    locations=[experiment_id], max_results=500, page_token=token, include_spans=False
                )
                infos += list(page)
                token = page.token
                if not token:
                    break
            seen = {t.info.trace_id: {a.name: a for a in t.info.assessments if a.name in wanted} for t in infos}
            done = sum(1 for i in logged if set(seen.get(i, {})) == wanted)
            if done == len(logged) or time.time() > deadline:
                break
            time.sleep(10)
        waited_s = time.time() - replay_start - replay_s

        lags, net, errors = [], [], 0
        for trace_id, at in logged.items():
            for a in seen.get(trace_id, {}).values():
                if a.error is not None or getattr(a.feedback, "error", None) is not None:
                    errors += 1
                lag = a.create_time_ms / 1000 - at
                lags.append(lag)
                # The buffer counts from the trace's start: what is left is the schedule and the scoring.
                net.append(a.create_time_ms / 1000 - (started_at[trace_id] + args.buffer))

        server_calls = len(judge.calls)  # before the suite's judges below call it too
        suite_module = importlib.util.spec_from_file_location("suite_scorers", live / "evaluation" / "scorers.py")
        module = importlib.util.module_from_spec(suite_module)
        suite_module.loader.exec_module(module)
        suite_judges = {j.name: j for j in module.get_judge_scorers(model=model)}
        agree = disagree = 0
        verdicts: dict[str, int] = {}
        examples = []
        local_start = time.time()
        for trace_id in logged:
            assessments = seen.get(trace_id, {})
            if not assessments:
                continue
            trace = mlflow.get_trace(trace_id)
            for name in judges:
                server_said = assessments.get(monitor.PREFIX + name)
                if server_said is None:
                    continue
                local = suite_judges[name].run(trace=trace)
                same = (str(server_said.value), server_said.rationale) == (str(local.value), local.rationale)
                agree += same
                disagree += not same
                verdicts[str(local.value)] = verdicts.get(str(local.value), 0) + 1
                if not same and len(examples) < 3:
                    examples.append(
                        {
                            "trace": trace_id,
                            "judge": name,
                            "server": [str(server_said.value), server_said.rationale],
                            "suite": [str(local.value), local.rationale],
                        }
                    )
        local_s = time.time() - local_start
    finally:
        mlflow.set_tracking_uri(before)
        mlflow_server.stop(proc)
        judge.close()

    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"mlflow {mlflow.__version__}",
        "buffer_seconds": args.buffer,
        "judges_started": judges,
        "judges_skipped": [s for s in result.skipped if s["name"] in specs and not specs[s["name"]].is_code],
        "code_scorers_not_started": len(result.not_started),
        "traces_replayed": len(logged),
        "replay_seconds": round(replay_s, 1),
        "traces_scored": done,
        "server_assessments": len(lags),
        "server_errors": errors,
        "server_judge_calls": server_calls,
        "agree": agree,
        "disagree": disagree,
        "suite_verdicts": verdicts,
        "disagree_examples": examples,
        "local_seconds": round(local_s, 1),
        "waited_after_replay_seconds": round(waited_s, 1),
        "lag_seconds": _spread(lags),
        "lag_after_buffer_seconds": _spread(net),
    }


if __name__ == "__main__":
    main()
