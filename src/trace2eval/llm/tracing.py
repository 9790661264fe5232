"""Trace trace2eval's own LLM sessions to MLflow: one trace per session, with a CHAT_MODEL span
per model call (from `mlflow.anthropic.autolog`, token usage included) and a TOOL span per tool
call, in a separate experiment of the same tracking store (never the agent's own experiment,
whose traces the next run would read).

Tracing is best effort: if the experiment cannot be created or written, the session runs untraced
and says so. Credentials never reach a trace: they live in the client's default headers, which
autolog does not record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from trace2eval.config import SessionConfig
from trace2eval.llm.clients import Endpoint
from trace2eval.llm.tools.base import ToolResult

TOOL_OUTPUT_CHARS = 2_000


@dataclass
class SessionTrace:
    experiment_id: str | None = None
    trace_id: str | None = None
    note: str | None = None  # why the session is not traced
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.trace_id is not None

    def tool_span(self, name: str, args: Any, call: Callable[[], ToolResult]) -> ToolResult:
        import mlflow

        with mlflow.start_span(name=f"tool:{name}", span_type="TOOL") as span:
            span.set_inputs(args if isinstance(args, dict) else {"raw": str(args)[:500]})
            result = call()
            span.set_outputs({"is_error": result.is_error, "content": result.content[:TOOL_OUTPUT_CHARS]})
            return result


def _experiment_id(tracking_uri: str, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    from trace2eval.demo.seed import artifact_root

    # Beside a local store, not MLflow's default `./mlruns` in whatever folder the run started in.
    root = artifact_root(tracking_uri)
    return client.create_experiment(name, artifact_location=str(root / name) if root else None)


@contextmanager
def traced_session(config: SessionConfig, session_id: str, task: str, endpoint: Endpoint) -> Iterator[SessionTrace]:
    """Within this block, Anthropic SDK calls and tool calls are spans of one session trace."""
    handle = SessionTrace()
    name = config.llm_trace_experiment
    if not name:
        handle.note = 'tracing of LLM sessions is off (--llm-trace-experiment "")'
        yield handle
        return
    import mlflow
    import mlflow.anthropic
    from mlflow.entities.trace_location import MlflowExperimentLocation

    previous_uri = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(config.tracking_uri)
        experiment_id = _experiment_id(config.tracking_uri, name)
        if str(experiment_id) == str(config.experiment_id):
            raise ValueError(f"{name!r} is the agent's own experiment; generator traces would mix with its traces")
        mlflow.anthropic.autolog(silent=True)
    except Exception as exc:
        mlflow.set_tracking_uri(previous_uri)
        handle.note = f"LLM session not traced: {str(exc).splitlines()[0][:200]}"
        yield handle
        return
    handle.experiment_id = str(experiment_id)
    try:
        with mlflow.start_span(
            name=f"trace2eval.{task}", span_type="AGENT", trace_destination=MlflowExperimentLocation(str(experiment_id))
        ) as span:
            span.set_inputs(
                {"task": task, "session": session_id, "model": endpoint.model, "endpoint": endpoint.messages_url}
            )
            handle.trace_id = span.trace_id
            yield handle
            span.set_outputs(handle.outputs)
    finally:
        mlflow.anthropic.autolog(disable=True, silent=True)
        mlflow.set_tracking_uri(previous_uri)
