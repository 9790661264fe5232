"""One small point per analyzed trace (time, duration, status), for the pictures that need the
whole distribution: the latency histogram and volume over time.

`state/analysis.json` keeps summaries only, so the report reads the same traces again, without
spans (thousands per second), and caches the points in the session. A session opened where the
tracking store cannot be reached (a copied folder, a Volume) uses the cache, or does without.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trace2eval.sessions.files import read_json, write_json
from trace2eval.sessions.session import Session
from trace2eval.traces.source import TraceQuery, is_evaluation_trace

POINTS_FILE = "trace_points.json"
PAGE_SIZE = 500  # an `mlflow server` caps pages at 500
MAX_POINTS = 50_000  # the newest 50k draw the same distribution; reading them takes seconds


@dataclass(frozen=True)
class TracePoints:
    timestamps_ms: list[int]
    durations_ms: list[float]
    statuses: list[str]
    source: str  # "mlflow" or "cache"
    experiment_name: str | None = None

    def __len__(self) -> int:
        return len(self.durations_ms)


def _query_filter(config, created_at: str | None) -> str | None:
    """The initializer's query, bounded by the session's start so later traffic is left out."""
    parts = [TraceQuery(config.experiment_id, config.filter_string, config.since_ms).mlflow_filter()]
    if created_at:
        try:
            started = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
            parts.append(
                f"attributes.timestamp_ms <= {int(started.timestamp() * 1000) + 999}"
            )  # created_at has whole seconds
        except ValueError:
            pass
    return " AND ".join(p for p in parts if p) or None


def fetch_points(session: Session, analysis: dict[str, Any]) -> TracePoints | None:
    """Points from the tracking store (and cached), else from the cache, else None."""
    cache = session.state_dir / POINTS_FILE
    try:
        points = _read_from_mlflow(session, analysis)
    except Exception:  # unreachable store, deleted experiment, no permission: the cache will do
        points = None
    if points is not None and len(points):
        write_json(
            cache,
            {
                "experiment_name": points.experiment_name,
                "timestamps_ms": points.timestamps_ms,
                "durations_ms": points.durations_ms,
                "statuses": points.statuses,
            },
        )
        return points
    return load_cached(session)


def load_cached(session: Session) -> TracePoints | None:
    """The points a previous render cached, or None."""
    cache = session.state_dir / POINTS_FILE
    if not cache.exists():
        return None
    try:
        data = read_json(cache)
        return TracePoints(
            list(data["timestamps_ms"]),
            list(data["durations_ms"]),
            list(data["statuses"]),
            "cache",
            data.get("experiment_name"),
        )
    except Exception:
        return None


def _read_from_mlflow(session: Session, analysis: dict[str, Any]) -> TracePoints | None:
    from trace2eval.traces.source import check_reachable

    config = session.config()
    check_reachable(config.tracking_uri, timeout_s=3.0)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    # The whole matching population when the initializer counted it (the analysis may be a sample).
    population = (analysis.get("population") or {}).get("traces")
    limit = population or (analysis.get("trace_summary") or {}).get("total_analyzed") or config.max_traces
    limit = min(int(limit), MAX_POINTS) if limit else MAX_POINTS
    filter_string = _query_filter(config, session.plan().created_at)
    timestamps: list[int] = []
    durations: list[float] = []
    statuses: list[str] = []
    token = None
    while True:
        want = PAGE_SIZE if limit is None else min(PAGE_SIZE, int(limit) - len(durations))
        if want <= 0:
            break
        page = client.search_traces(
            locations=[config.experiment_id],
            filter_string=filter_string,
            max_results=want,
            order_by=["timestamp_ms DESC"],
            page_token=token,
            include_spans=False,
        )
        for trace in page:
            if is_evaluation_trace(trace):
                continue
            info = trace.info
            timestamps.append(int(info.request_time or 0))
            durations.append(float(info.execution_duration or 0))
            statuses.append(str(getattr(info.state, "value", info.state)))
        token = page.token
        if not token or not len(page):
            break
    try:
        name = client.get_experiment(config.experiment_id).name
    except Exception:
        name = None
    return TracePoints(timestamps, durations, statuses, "mlflow", name)
