"""The generation itself as an MLflow run in the experiment it analyzed.

One run per session (found again by its session tag, so publishing twice updates it): the
settings as parameters, the counts as metrics, the session folder and the report as artifacts,
and a short summary as the run's description. The run ends FINISHED when the suite validated,
FAILED otherwise, so the experiment's run list shows nightly health at a glance.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from trace2eval.report.context import read_specs
from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session

SESSION_TAG = "trace2eval.session_id"
KIND_TAG = "trace2eval.run_type"
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-./ ]")
PARAM_MAX = 500


def _key(name: str) -> str:
    return _METRIC_KEY.sub("_", str(name))[:250]


def _read(path: Path) -> Any:
    try:
        return read_json(path) if path.exists() else None
    except Exception:
        return None


def find_or_create_run(session: Session, known_run_id: str | None = None) -> str:
    """The session's generation run id, created RUNNING when it does not exist yet."""
    from mlflow import MlflowClient

    config = session.config()
    client = MlflowClient(tracking_uri=config.tracking_uri)
    if known_run_id:
        try:
            run = client.get_run(known_run_id)
            if run.info.lifecycle_stage == "active":
                return run.info.run_id
        except Exception:
            pass
    found = client.search_runs(
        [str(config.experiment_id)],
        filter_string=f"tags.`{SESSION_TAG}` = '{session.id}' AND tags.`{KIND_TAG}` = 'generation'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        str(config.experiment_id),
        run_name=f"trace2eval-generation-{session.id}",
        tags={SESSION_TAG: session.id, KIND_TAG: "generation"},
    )
    return run.info.run_id


def generation_params(session: Session) -> dict[str, str]:
    """Settings that explain the run; never secrets (the config holds none by design)."""
    import mlflow

    import trace2eval

    config = session.config()
    params = {
        "session_id": session.id,
        "engine": session.plan().engine,
        "llm": config.llm,
        "llm_model": config.llm_model if config.llm != "none" else "",
        "judge_model": config.judge_model or "",
        "max_traces": config.max_traces or "all",
        "filter": config.filter_string or "",
        "since_ms": config.since_ms or "",
        "labels": config.labels or "",
        "seed": config.seed,
        "max_fix_attempts": config.max_fix_attempts,
        "trace2eval_version": getattr(trace2eval, "__version__", "unknown"),
        "mlflow_version": mlflow.__version__,
    }
    return {k: str(v)[:PARAM_MAX] for k, v in params.items()}


def generation_metrics(session: Session) -> dict[str, float]:
    """Counts from every state file: what was read, found, generated and measured."""
    metrics: dict[str, float] = {}
    analysis = _read(session.analysis_file) or {}
    summary = analysis.get("trace_summary") or {}
    for key in ("total_analyzed", "error_count", "without_answer", "total_tokens"):
        if isinstance(summary.get(key), (int, float)):
            metrics[f"traces/{key}"] = summary[key]
    for stat in ("p50", "p95"):
        value = (summary.get("latency_ms") or {}).get(stat)
        if isinstance(value, (int, float)):
            metrics[f"traces/latency_{stat}_ms"] = value
    findings = [f for f in analysis.get("findings") or [] if isinstance(f, dict)]
    metrics["findings/count"] = len(findings)
    for severity in ("high", "medium", "low"):
        metrics[f"findings/{severity}"] = sum(f.get("severity") == severity for f in findings)
    for f in findings:
        rate = (f.get("prevalence") or {}).get("rate")
        if f.get("id") and isinstance(rate, (int, float)):
            metrics[_key(f"finding_rate/{f['id']}")] = rate
    metrics["query_types/count"] = len(analysis.get("query_types") or [])

    dataset = _read(session.dataset_json) or {}
    metrics["dataset/rows"] = len(dataset.get("rows") or [])
    metrics["dataset/findings_covered"] = len(dataset.get("findings_covered") or [])
    metrics["dataset/skipped"] = len(dataset.get("skipped") or [])

    specs = read_specs(session.scorer_specs_file) or {}
    scorers = [s for s in specs.get("scorers") or [] if isinstance(s, dict)]
    metrics["scorers/code"] = sum(s.get("implementation") in ("code", "rule", "custom_code") for s in scorers)
    metrics["scorers/judges"] = len(scorers) - metrics["scorers/code"]
    metrics["scorers/dropped"] = len(specs.get("dropped") or [])

    validation = _read(session.validation_file) or {}
    if validation:
        metrics["validation/passed"] = 1.0 if validation.get("validation_status") == "passed" else 0.0
        metrics["validation/problems"] = len(validation.get("problems") or [])
        seconds = (validation.get("details") or {}).get("seconds")
        if isinstance(seconds, (int, float)):
            metrics["validation/seconds"] = seconds
        for name, value in (validation.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and value == value:
                metrics[_key(f"eval/{name}")] = value
    for task in session.plan().tasks:
        if task.duration_s is not None:
            metrics[_key(f"task_seconds/{task.name}")] = task.duration_s
        metrics[_key(f"task_attempts/{task.name}")] = task.attempts
    return {k: float(v) for k, v in metrics.items()}


def summary_note(session: Session, report_name: str | None) -> str:
    """Markdown shown as the run's description in the MLflow UI."""
    analysis = _read(session.analysis_file) or {}
    validation = _read(session.validation_file) or {}
    findings = [f for f in analysis.get("findings") or [] if isinstance(f, dict)]
    lines = [
        f"**trace2eval session {session.id}** — validation: **{validation.get('validation_status', 'not run')}**",
        "",
    ]
    total = (analysis.get("trace_summary") or {}).get("total_analyzed")
    if total:
        lines.append(f"{total} traces analyzed, {len(findings)} findings:")
        for f in findings[:8]:
            prev = f.get("prevalence") or {}
            lines.append(f"- {f.get('severity', '?')}: {f.get('title') or f.get('id')} — {prev.get('traces')} traces")
    if report_name:
        lines += ["", f"Open `{report_name}` in this run's artifacts for the full report."]
    return "\n".join(lines)[:7900]


def _staged_session(session: Session, into: Path) -> Path:
    """A copy of the session folder without lock and temporary files."""
    target = into / "session"
    shutil.copytree(session.dir, target, ignore=shutil.ignore_patterns(".*", "*.tmp", "__pycache__"))
    return target


def log_generation_run(session: Session, run_id: str, report_html: Path | None) -> None:
    """Log parameters, metrics, tags and artifacts to the run, then end it."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    config = session.config()
    client = MlflowClient(tracking_uri=config.tracking_uri)
    run = client.get_run(run_id)
    logged = run.data.params
    # A parameter cannot change once logged: log only the new ones (a rerun changes none).
    params = [Param(k, v) for k, v in generation_params(session).items() if k not in logged]
    now_ms = int(time.time() * 1000)
    metrics = [Metric(k, v, now_ms, 0) for k, v in generation_metrics(session).items()]
    validation = _read(session.validation_file) or {}
    tags = {
        "mlflow.note.content": summary_note(session, "report.html" if report_html else None),
        "trace2eval.validation_status": str(validation.get("validation_status", "not run")),
        "trace2eval.validation_run_id": str(validation.get("run_id") or ""),
        "trace2eval.gate_status": str(validation.get("gate_status") or ""),
    }
    client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in tags.items()])
    with tempfile.TemporaryDirectory(prefix="trace2eval-artifacts-") as tmp:
        client.log_artifacts(run_id, str(_staged_session(session, Path(tmp))), artifact_path="session")
    if report_html is not None and report_html.exists():
        client.log_artifact(run_id, str(report_html))
    status = "FINISHED" if validation.get("validation_status") == "passed" else "FAILED"
    client.set_terminated(run_id, status)
