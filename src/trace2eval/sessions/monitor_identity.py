"""Run as a script in a fresh process: do the registered monitors say what the suite says?

    python monitor_identity.py EVALUATION_DIR EXPERIMENT_ID PREFIX NAME [NAME ...]
    python monitor_identity.py --all-traces EVALUATION_DIR EXPERIMENT_ID PREFIX NAME [NAME ...]

Loads each registered scorer back with `mlflow.genai.scorers.get_scorer(PREFIX + NAME)` (the way
the tracking server's job runner rebuilds it: from its stored source alone), imports the suite's
own `scorers.py` and `eval_dataset.py` from EVALUATION_DIR, and runs both on every dataset row
(with the row's source trace when the store still has it), or with --all-traces on every trace of
the experiment, as a monitor would see them (inputs and outputs from the root span); a conversation-level
scorer once per conversation (session) with its turns' traces. Prints one JSON object: rows compared,
and per scorer the rows (or sessions) where value or rationale differ (at most three examples each).

Standard library and MLflow only: it runs the suite's code, in a process of its own, started with
a scrubbed environment (trace2eval's validate/run.py), the tracking URI in MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import json
import os
import sys

EXAMPLES = 3
SESSION_KEY = "mlflow.trace.session"


def _verdict(result):
    if isinstance(result, list):
        return [_verdict(r) for r in result]
    value = getattr(result, "value", result)
    rationale = getattr(result, "rationale", None)
    return [value if isinstance(value, (bool, int, float, str, type(None))) else repr(value), rationale]


def _rows(eval_dataset, mlflow, experiment_id, all_traces):
    """(source trace id, call arguments) for each row, or for each trace of the experiment."""
    if all_traces:
        client, token = mlflow.MlflowClient(), None
        while True:
            page = client.search_traces(locations=[experiment_id], max_results=200, page_token=token)
            for trace in page:
                yield trace.info.trace_id, {"inputs": None, "outputs": None, "trace": trace}
            token = page.token
            if not token:
                return
    for row in eval_dataset.get_eval_dataset():
        source = (row.get("metadata") or {}).get("source_trace")
        trace = None
        if isinstance(source, str) and source:
            try:
                trace = mlflow.get_trace(source, silent=True)
            except Exception:
                trace = None
        yield source, {"inputs": row.get("inputs"), "outputs": row.get("outputs"), "trace": trace}


def main(argv):
    all_traces = argv[:1] == ["--all-traces"]
    evaluation_dir, experiment_id, prefix, *names = argv[1:] if all_traces else argv
    # The registered form is a `@scorer` rebuilt from source: outside Databricks, MLflow only does
    # that for a process that says it trusts the code, and this one runs the suite's own.
    os.environ["MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"] = "true"
    sys.path.insert(0, evaluation_dir)
    import mlflow
    from mlflow.genai.scorers import get_scorer

    import eval_dataset
    import scorers

    local = {s.name: s for s in scorers.get_code_scorers()}
    registered, problems = {}, {}
    for name in names:
        if name not in local:
            problems[name] = "not in the suite's get_code_scorers()"
            continue
        try:
            registered[name] = get_scorer(name=prefix + name, experiment_id=experiment_id)
        except Exception as exc:
            problems[name] = f"cannot be loaded back: {type(exc).__name__}: {exc}"[:500]
    differ = {name: [] for name in registered}
    counts = {name: 0 for name in registered}
    failed = {name: 0 for name in registered}  # the suite's own verdict: how many traces fail it
    # A conversation-level scorer is called once per session with its turns' traces, as MLflow does.
    per_session = {n for n in registered if getattr(local[n], "is_session_level_scorer", False)}
    sessions = {}
    rows = with_trace = 0

    def compare(name, where, args):
        try:
            mine = _verdict(local[name](**args))
        except Exception as exc:
            mine = ["error", f"{type(exc).__name__}: {exc}"]
        try:
            theirs = _verdict(registered[name](**args))
        except Exception as exc:
            theirs = ["error", f"{type(exc).__name__}: {exc}"]
        counts[name] += 1
        failed[name] += mine[0] is False
        if mine != theirs:
            differ[name].append(
                {**where, "suite": mine, "registered": theirs} if len(differ[name]) < EXAMPLES else where
            )

    for i, (source, args) in enumerate(_rows(eval_dataset, mlflow, experiment_id, all_traces)):
        rows += 1
        trace = args["trace"]
        with_trace += trace is not None
        session = (getattr(trace.info, "trace_metadata", None) or {}).get(SESSION_KEY) if trace is not None else None
        if session:  # a trace once per conversation, however many of its rows cite it
            sessions.setdefault(session, {})[trace.info.trace_id] = trace
        for name in registered:
            if name not in per_session:
                compare(name, {"row": i, "source_trace": source}, args)
    for session, traces in sessions.items():
        for name in per_session:
            compare(name, {"session": session}, {"session": list(traces.values())})
    print(
        json.dumps(
            {
                "rows": rows,
                "rows_with_trace": with_trace,
                "compared": counts,
                "suite_failed": failed,
                "differ": {name: d for name, d in differ.items() if d},
                "problems": problems,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
