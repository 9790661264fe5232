"""Read an experiment's traces from MLflow, page by page, as small digests.

Full traces are big (tens of KB each with spans) and are never all held at once: each page is
turned into digests and dropped before the next one is fetched.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from trace2eval.errors import SourceError
from trace2eval.sessions.files import json_safe
from trace2eval.traces.digest import digest_trace
from trace2eval.traces.redact import redact_text

PAGE_SIZE = 200  # an `mlflow server` caps pages at 500; 200 keeps pages of big traces modest
ALL_FAILED_PAGE = 3  # a page this big with no readable trace is a store failure, not poison traces


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
        return uri[len("sqlite:///") :] if not uri.startswith("sqlite:////") else uri[len("sqlite:///") :]
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
        url = (
            urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", "")).rstrip("/")
            + "/health"
        )
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
        if (
            "RESOURCE_DOES_NOT_EXIST" in str(code)
            or "does not exist" in str(exc).lower()
            or "INVALID_PARAMETER" in str(code)
        ):
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


def iter_trace_pages(
    client, query: TraceQuery, page_size: int = PAGE_SIZE, include_spans: bool = True
) -> Iterator[list[Any]]:
    """Yield pages of full traces, newest first, stopping at `query.max_traces`.

    A trace MLflow cannot load (a corrupt span row, spans missing, JSON nested too deep) must not
    take its page down with it: that page is read again trace by trace, and each trace that still
    fails comes back as an `UnreadableTrace` in its place.
    """

    token = None
    seen = 0
    while True:
        want = page_size
        if query.max_traces is not None:
            want = min(want, query.max_traces - seen)
            if want <= 0:
                return
        search = dict(
            locations=[query.experiment_id],
            filter_string=query.mlflow_filter(),
            max_results=want,
            order_by=["timestamp_ms DESC"],
            page_token=token,
        )
        try:
            page = client.search_traces(**search, include_spans=include_spans)
            traces = list(page)
        except Exception as exc:
            if not include_spans:
                raise _search_error(exc) from None
            try:  # the same page without spans: if that fails too, the query itself is wrong
                page = client.search_traces(**search, include_spans=False)
            except Exception as again:
                raise _search_error(again) from None
            traces = [_read_one(client, info_only) for info_only in page]
            if len(traces) >= ALL_FAILED_PAGE and all(isinstance(t, UnreadableTrace) for t in traces):
                # Not poison in a few traces: the store (or the network) fails. Skipping would move
                # a nightly watermark past traces nothing is wrong with.
                raise SourceError(
                    f"no trace of a page of {len(traces)} could be read ({traces[0].reason})",
                    "check that the tracking store is reachable and not damaged, then rerun",
                )
        if traces:
            seen += len(traces)
            yield traces
        token = page.token
        if not token or not traces:
            return


def _search_error(exc: Exception) -> SourceError:
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return SourceError(
            f"MLflow rejected the trace search ({exc.message if hasattr(exc, 'message') else exc})",
            "check --filter: e.g. \"attributes.status = 'OK'\" or \"tags.env = 'prod'\" (no IN / OR)",
        )
    return SourceError(
        f"cannot search the traces: {type(exc).__name__}: {exc}",
        "check that the tracking store is reachable and not damaged",
    )


def _read_one(client, info_only) -> Any:
    info = info_only.info
    try:
        return client.get_trace(info.trace_id)
    except Exception as exc:
        return UnreadableTrace(info.trace_id, failure_reason(exc), int(info.request_time or 0), "read")


EVAL_TAG = "mlflow.eval.requestId"
STAND_IN_TAG = "trace2eval.stand_in_for"  # run_eval.py's stand-in for a row whose source trace was deleted
CANDIDATE_TAG = "trace2eval.candidate"  # a candidate version's answer, from run_eval.py --agent


def is_evaluation_trace(trace) -> bool:
    """A trace `mlflow.genai.evaluate` wrote for a dataset row, not production traffic.

    Evaluating rows without their source trace logs stand-in traces into the same experiment;
    the next analysis must not mistake its own evaluations for the agent's behaviour. The same
    holds for the stand-ins `run_eval.py` writes for rows whose source trace was deleted, and for the
    traces of a candidate version it evaluates (`--agent`).
    """
    tags = getattr(trace.info, "tags", None) or {}
    return EVAL_TAG in tags or STAND_IN_TAG in tags or CANDIDATE_TAG in tags


def iter_digests(
    client, query: TraceQuery, page_size: int = PAGE_SIZE, label_name: str | None = None
) -> Iterator[dict[str, Any]]:
    """Digests, and skip records (`is_unreadable`) for traces that could not be read or digested."""
    for page in iter_trace_pages(client, query, page_size):
        for trace in page:
            if not is_evaluation_trace(trace):
                yield digest_or_skip(trace, label_name)


# -- poison traces: skipped, counted and reported; one bad trace never stops a run ----------------

UNREADABLE = "unreadable"  # the key that marks a skip record among digests


@dataclass(frozen=True)
class UnreadableTrace:
    """A trace MLflow could not load: stands in its page in place of the trace."""

    trace_id: str
    reason: str
    timestamp_ms: int = 0
    stage: str = "read"

    info = None  # not a Trace: `is_evaluation_trace` and friends see no info

    def record(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "timestamp_ms": self.timestamp_ms,
            UNREADABLE: self.reason,
            "stage": self.stage,
        }


def failure_reason(exc: BaseException) -> str:
    """One line on why a trace failed, short and with any secret in the message redacted."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return redact_text(json_safe(text[:300]))


def is_unreadable(digest: dict[str, Any]) -> bool:
    return UNREADABLE in digest


def digest_or_skip(trace: Any, label_name: str | None = None) -> dict[str, Any]:
    """The trace's digest, or a skip record when it is unreadable or its digest fails.

    A digest that strict JSON or UTF-8 would refuse (NaN, a lone surrogate) is made safe here, so
    no later stage (analysis, state files, the report, generated code) meets the raw value.
    """
    if isinstance(trace, UnreadableTrace):
        return trace.record()
    info = getattr(trace, "info", None)
    trace_id = str(getattr(info, "trace_id", None) or "?")
    try:
        timestamp_ms = int(getattr(info, "request_time", 0) or 0)
    except (TypeError, ValueError, OverflowError):
        timestamp_ms = 0
    try:
        digest = digest_trace(trace, label_name)
        try:
            json.dumps(digest, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
        except (ValueError, UnicodeEncodeError, RecursionError):
            digest = json_safe(digest)
        return digest
    except Exception as exc:  # anything in one trace's content: skip it, never the run
        return {"trace_id": trace_id, "timestamp_ms": timestamp_ms, UNREADABLE: failure_reason(exc), "stage": "digest"}


MAX_EXAMPLES = 50  # skipped traces listed by id; the count is always exact


@dataclass
class SkippedTraces:
    """Traces left out of the analysis, with why: written to the analysis and reported."""

    count: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        stage = str(record.get("stage") or "read")
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"trace_id": record.get("trace_id"), "stage": stage, "reason": record.get(UNREADABLE)})

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "by_stage": dict(self.by_stage),
            "traces": list(self.examples),
            "note": (
                "traces that could not be read (MLflow failed to load them) or digested (their content "
                "broke feature extraction); skipped, not analyzed"
            ),
        }

    def message(self) -> str:
        first = self.examples[0] if self.examples else {}
        return (
            f"{self.count} trace(s) could not be read and were skipped (e.g. {first.get('trace_id')}: "
            f"{first.get('reason')}); the list is in state/analysis.json under skipped_traces"
        )


def fetch_trace(client, trace_id: str):
    """One full trace, or None when it is gone."""
    try:
        return client.get_trace(trace_id)
    except Exception:
        return None


def fetch_row_trace(client, trace_id: str):
    """One trace to build a dataset row from, or None when it is gone or unreadable.

    Its spans' inputs and outputs are strict-JSON safe (see `json_safe`: NaN → null, lone
    surrogates replaced, nesting cut at a depth every recursive walk survives), so a row's
    redaction, truncation and writing cannot fail on what the agent put in the trace.
    """
    trace = fetch_trace(client, trace_id)
    if trace is None:
        return None
    view = _RowTrace(trace.info, _RowData([_RowSpan(span) for span in trace.data.spans]))
    try:  # what a row reads, read now: a damaged root span means no row, not a failed dataset task
        root = next((span for span in view.data.spans if span.parent_id is None), None)
        if root is not None:
            root.inputs, root.outputs  # noqa: B018 (read for the check, cached for the row)
    except Exception:
        return None
    return view


@dataclass(frozen=True)
class _RowData:
    spans: list[Any]


@dataclass(frozen=True)
class _RowTrace:
    """What `build_rows` reads of a trace: its info and its spans."""

    info: Any
    data: _RowData


class _RowSpan:
    """A span whose inputs/outputs are made safe when first read; the rest is the span's own.

    Lazy: a damaged span the row never reads (a child, not the root) must not cost the row.
    """

    def __init__(self, span: Any):
        self._span = span
        self._safe: dict[str, Any] = {}

    def _read(self, name: str) -> Any:
        if name not in self._safe:
            self._safe[name] = json_safe(getattr(self._span, name))
        return self._safe[name]

    @property
    def inputs(self) -> Any:
        return self._read("inputs")

    @property
    def outputs(self) -> Any:
        return self._read("outputs")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)
