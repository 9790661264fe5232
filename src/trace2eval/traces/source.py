"""Read an experiment's traces from MLflow, page by page, as small digests.

Full traces are big (tens of KB each with spans) and are never all held at once: each page is
turned into digests and dropped before the next one is fetched.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trace2eval.errors import SourceError
from trace2eval.traces.digest import digest_trace

PAGE_SIZE = 200  # an `mlflow server` caps pages at 500; 200 keeps pages of big traces modest


@dataclass(frozen=True)
class TraceQuery:
    experiment_id: str
    filter_string: str | None = None
    since_ms: int | None = None
    max_traces: int | None = None

    def mlflow_filter(self) -> str | None:
        parts = [p for p in (self.filter_string,) if p]
        if self.since_ms is not None:
            parts.append(f"attributes.timestamp_ms > {int(self.since_ms)}")
        return " AND ".join(parts) or None


def _sqlite_path(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return uri[len("sqlite:///"):] if not uri.startswith("sqlite:////") else uri[len("sqlite:///"):]
    return None


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast with a clear message instead of MLflow's minutes of retries."""
    from trace2eval.config import uri_lacks_secret

    if uri_lacks_secret(tracking_uri):  # config.json holds `user:***@`; the password is not stored
        raise SourceError(
            f"the password of tracking URI {tracking_uri} is not stored with the session",
            "set MLFLOW_TRACKING_URI (or TRACE2EVAL_TRACKING_URI) to the full URI, then resume",
        )
    path = _sqlite_path(tracking_uri)
    if path is not None and path != ":memory:" and not os.path.exists(path):
        raise SourceError(
            f"no MLflow tracking store at {path}",
            "check --tracking-uri (for a local store: sqlite:///<existing file>.db)",
        )
    if tracking_uri.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(tracking_uri)  # no user:password@ (urllib cannot send it; MLflow does)
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", "")).rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (user's server)
                response.read(64)
        except urllib.error.HTTPError:
            return  # the server answered; /health may just not exist behind a proxy
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(
                f"cannot reach the MLflow tracking server at {tracking_uri} ({reason})",
                "start the server or fix --tracking-uri / MLFLOW_TRACKING_URI",
            ) from None


def open_client(tracking_uri: str, experiment_id: str):
    """An MlflowClient for a tracking store whose experiment exists."""
    check_reachable(tracking_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=tracking_uri)  # a database URI fails here without its driver
        experiment = client.get_experiment(str(experiment_id))
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if "RESOURCE_DOES_NOT_EXIST" in str(code) or "does not exist" in str(exc).lower() or "INVALID_PARAMETER" in str(code):
            raise SourceError(
                f"experiment {experiment_id} does not exist in {tracking_uri}",
                "check --experiment-id (`mlflow experiments search` lists them)",
            ) from None
        raise SourceError(f"cannot read experiment {experiment_id} from {tracking_uri}: {exc}") from None
    except Exception as exc:  # connection errors surface as many types
        raise SourceError(f"cannot read experiment {experiment_id} from {tracking_uri}: {exc}") from None
    if experiment is None:
        raise SourceError(
            f"experiment {experiment_id} does not exist in {tracking_uri}",
            "check --experiment-id (`mlflow experiments search` lists them)",
        )
    if getattr(experiment, "lifecycle_stage", "active") == "deleted":
        raise SourceError(f"experiment {experiment_id} is deleted", "restore it or pick another experiment")
    return client


def open_client_unchecked(tracking_uri: str):
    """A client for a store already checked by `open_client` (in worker processes)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def iter_trace_pages(client, query: TraceQuery, page_size: int = PAGE_SIZE, include_spans: bool = True) -> Iterator[list[Any]]:
    """Yield pages of full traces, newest first, stopping at `query.max_traces`."""
    from mlflow.exceptions import MlflowException

    token = None
    seen = 0
    while True:
        want = page_size
        if query.max_traces is not None:
            want = min(want, query.max_traces - seen)
            if want <= 0:
                return
        try:
            page = client.search_traces(
                locations=[query.experiment_id],
                filter_string=query.mlflow_filter(),
                max_results=want,
                order_by=["timestamp_ms DESC"],
                page_token=token,
                include_spans=include_spans,
            )
        except MlflowException as exc:
            raise SourceError(
                f"MLflow rejected the trace search ({exc.message if hasattr(exc, 'message') else exc})",
                "check --filter: e.g. \"attributes.status = 'OK'\" or \"tags.env = 'prod'\" (no IN / OR)",
            ) from None
        traces = list(page)
        if traces:
            seen += len(traces)
            yield traces
        token = page.token
        if not token or not traces:
            return


EVAL_TAG = "mlflow.eval.requestId"


def is_evaluation_trace(trace) -> bool:
    """A trace `mlflow.genai.evaluate` wrote for a dataset row, not production traffic.

    Evaluating rows without their source trace logs stand-in traces into the same experiment;
    the next analysis must not mistake its own evaluations for the agent's behaviour.
    """
    return EVAL_TAG in (getattr(trace.info, "tags", None) or {})


def iter_digests(client, query: TraceQuery, page_size: int = PAGE_SIZE, label_name: str | None = None) -> Iterator[dict[str, Any]]:
    for page in iter_trace_pages(client, query, page_size):
        for trace in page:
            if not is_evaluation_trace(trace):
                yield digest_trace(trace, label_name)


def fetch_trace(client, trace_id: str):
    """One full trace, or None when it is gone."""
    try:
        return client.get_trace(trace_id)
    except Exception:
        return None
