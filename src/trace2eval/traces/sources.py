"""Where a session's traces come from, behind one interface chosen once from `--source`.

`MlflowTraceSource` pages through the experiment's traces in MLflow (traces/source.py,
traces/reader.py); `UnityCatalogTraceSource` runs Spark over the OpenTelemetry tables MLflow
writes to Unity Catalog (spark/engine.py, imported only when used: pyspark is optional). The
tasks call `trace_source(config)` and the interface, never an engine directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from trace2eval import ui
from trace2eval.analysis.analyze import Analyzer
from trace2eval.analysis.querytypes import prewarm
from trace2eval.analysis.stats import summary as distribution
from trace2eval.errors import SourceError
from trace2eval.spark.location import check_source, is_uc_source
from trace2eval.traces.reader import plan_shards, read_digests, scan_index
from trace2eval.traces.source import SkippedTraces, TraceQuery, fetch_row_trace, open_client

if TYPE_CHECKING:
    from trace2eval.config import SessionConfig
    from trace2eval.sessions.watermark import TraceWindow

TraceGetter = Callable[[str], Any]  # trace id -> an `mlflow.entities.Trace` (or what rows read of one), None when gone


@dataclass(frozen=True)
class SourceAnalysis:
    """What a source's analysis hands the initializer."""

    analysis: dict[str, Any] | None  # `state/analysis.json`; None when a nightly window holds nothing new
    skipped_note: str | None = None  # the run note on traces left out, None when none was
    skipped_traces: list[dict[str, Any]] = field(default_factory=list)  # examples for the run note
    points: dict[str, list] | None = None  # the report's per-trace points, for traces MLflow cannot page through
    extra: dict[str, Any] = field(default_factory=dict)  # fields for the task's summary


class TraceSource(Protocol):
    """The operations the initializer and dataset tasks need of a trace store."""

    def analyze(self, window: TraceWindow | None = None) -> SourceAnalysis:
        """Analyze every matching trace (or a sample of at most `max_traces`); with a nightly `window`
        (the suite's watermark), only those past it that it has not processed yet."""
        ...

    def fetching(self, trace_ids: list[str]) -> contextlib.AbstractContextManager[TraceGetter]:
        """A getter for the full traces behind `trace_ids`, valid inside the `with` block."""
        ...


def trace_source(config: SessionConfig, client: Any = None) -> TraceSource:
    """The source `config.source` names; `client`, an open MlflowClient, is reused by MLflow."""
    source = check_source(config.source)  # a Trace2EvalError naming the bad value and the valid ones
    if is_uc_source(source):
        return UnityCatalogTraceSource(config)
    return MlflowTraceSource(config, client)


class MlflowTraceSource:
    """The experiment's traces read through MLflow, page by page, in worker processes."""

    def __init__(self, config: SessionConfig, client: Any = None):
        self.config = config
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = open_client(self.config.tracking_uri, self.config.experiment_id)
        return self._client

    def analyze(self, window: TraceWindow | None = None) -> SourceAnalysis:
        config = self.config
        since_ms = window.since_ms if window else config.since_ms
        query = TraceQuery(config.experiment_id, config.filter_string, since_ms, config.max_traces)
        index = scan_index(self.client, query)
        if index.count == 0 and not (window and window.previous):
            what = f"experiment {config.experiment_id} has no traces"
            if query.mlflow_filter():
                what += f" matching {query.mlflow_filter()!r}"
            raise SourceError(what, "log traces from your agent first, or widen --filter / --since")
        plan = plan_shards(index, config.max_traces, seed=config.seed)
        if window is not None and plan.expected < index.count:
            ui.warn(
                f"more new traces ({index.count}) than --max-traces {config.max_traces}: a sample is analyzed and "
                "the watermark moves past the rest (raise max_traces to cover a night's traffic)"
            )
        analyzer = Analyzer(seed=config.seed, label_name=config.labels)
        skipped = SkippedTraces()  # poison traces: left out with their reason, never the end of the run
        digests = (
            read_digests(config.tracking_uri, query, plan, label_name=config.labels, skipped=skipped)
            if index.count
            else iter(())
        )
        for n, digest in enumerate(ui.track(digests, "Reading traces", total=plan.expected)):
            if n == 0:
                prewarm()  # worker processes exist by now (no thread is forked along)
            if window is None or window.accepts(digest["trace_id"], digest.get("timestamp_ms", 0)):
                analyzer.add(digest)
        if skipped.count:
            ui.warn(skipped.message())
            if not analyzer.rows and not (window and window.previous):
                raise SourceError(
                    f"none of the {skipped.count} traces could be read (e.g. "
                    f"{skipped.examples[0]['trace_id']}: {skipped.examples[0]['reason']})",
                    "check the tracking store; the traces may be damaged",
                )
        noted = (
            dict(skipped_note=skipped.message(), skipped_traces=skipped.summary()["traces"]) if skipped.count else {}
        )
        extra = {"skipped_traces": skipped.count} if skipped.count else {}
        if window is not None and not analyzer.rows and window.previous is not None:
            return SourceAnalysis(None, **noted, extra=extra)  # nothing new since the last successful run
        with ui.activity("Analyzing", unit="traces") as progress:
            progress.update(0, len(analyzer.rows))
            analysis = analyzer.finish(sample_note=plan.note)
            progress.update(len(analyzer.rows), len(analyzer.rows))
        analysis["population"] = {
            "traces": index.count,
            "by_status": dict(index.statuses),
            "latency_ms": distribution(index.durations),
            "tokens_per_trace": distribution(index.tokens) if index.tokens else {"count": 0},
            "note": "every matching trace, read without spans"
            + ("" if plan.expected >= index.count else "; findings come from the sample"),
        }
        if skipped.count:
            analysis["skipped_traces"] = skipped.summary()
        return SourceAnalysis(analysis, **noted, extra=extra)

    @contextlib.contextmanager
    def fetching(self, trace_ids: list[str]) -> Iterator[TraceGetter]:
        # One trace at a time, as rows are built: full traces are never all held at once.
        client = self.client
        with ui.activity("Fetching dataset traces", unit="traces") as progress:

            def fetch_one(trace_id: str):
                trace = fetch_row_trace(client, trace_id)
                progress.update(progress.done + 1, len(trace_ids))
                return trace

            yield fetch_one


class UnityCatalogTraceSource:
    """The OpenTelemetry trace tables of a Unity Catalog location, read with Spark."""

    def __init__(self, config: SessionConfig):
        self.config = config

    def analyze(self, window: TraceWindow | None = None) -> SourceAnalysis:
        from trace2eval.spark.engine import analyze

        analysis, points = analyze(self.config, window)
        if analysis is None:  # a nightly window with nothing new since the last successful run
            return SourceAnalysis(None)
        skipped = analysis.get("skipped_traces") or {}
        if not skipped.get("count"):
            return SourceAnalysis(analysis, points=points)
        # The engine warned already; the note reaches SUITE.md and the report.
        note = (
            f"{skipped['count']} trace(s) could not be digested on the cluster and were skipped; "
            "see state/analysis.json skipped_traces"
        )
        return SourceAnalysis(analysis, skipped_note=note, skipped_traces=skipped["traces"], points=points)

    @contextlib.contextmanager
    def fetching(self, trace_ids: list[str]) -> Iterator[TraceGetter]:
        # One Spark query for every chosen trace, from the same tables the analysis read.
        from trace2eval.spark.engine import fetch

        with ui.activity(f"Fetching {len(trace_ids)} dataset traces from {self.config.source}", unit="traces"):
            traces = fetch(self.config, trace_ids)
        yield traces.get
