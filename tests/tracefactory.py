"""Write hand-made traces into a real MLflow store, shaped like a production agent's."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

_counter = itertools.count()


class TraceStore:
    def __init__(self, path: Path, experiment: str = "agent-prod"):
        import mlflow

        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        mlflow.set_tracking_uri(self.uri)
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        self.mlflow = mlflow

    def add(
        self,
        request: Any = None,
        response: Any = None,
        *,
        tools: list[dict] | None = None,
        status: str = "OK",
        duration_ms: int = 1000,
        user_turns: list[str] | None = None,
        exception: tuple[str, str] | None = None,
        root_outputs: Any = "__default__",
    ) -> str:
        """One trace: AGENT root, an LLM span carrying the user turns, then the tool spans.

        tools: [{"name", "args", "output", "error": bool, "children": int}]
        """
        from mlflow.entities import SpanEvent, SpanStatusCode, SpanType

        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.uri)
        t0 = 1_767_225_600_000_000_000 + next(_counter) * 60_000_000_000
        inputs = request if isinstance(request, dict) else {"query": request}
        root = mlflow.start_span_no_context(
            name="agent", span_type=SpanType.AGENT, inputs=inputs, start_time_ns=t0, experiment_id=self.experiment_id
        )
        t = t0 + 1_000_000
        turns = user_turns or [inputs.get("query") if isinstance(inputs, dict) else str(request)]
        for turn in turns:
            llm = mlflow.start_span_no_context(
                name="llm",
                span_type=SpanType.CHAT_MODEL,
                parent_span=root,
                inputs={"messages": [{"role": "user", "content": turn}]},
                start_time_ns=t,
            )
            llm.end(outputs={"content": "ok", "tool_calls": []}, end_time_ns=t + 1_000_000)
            t += 2_000_000
        for tool in tools or []:
            span = mlflow.start_span_no_context(
                name=tool["name"],
                span_type=SpanType.TOOL,
                parent_span=root,
                inputs=tool.get("args", {}),
                start_time_ns=t,
            )
            for _ in range(tool.get("children", 0)):
                child = mlflow.start_span_no_context(
                    name="inner_llm",
                    span_type=SpanType.CHAT_MODEL,
                    parent_span=span,
                    inputs={"messages": []},
                    start_time_ns=t,
                )
                child.end(outputs={"content": "x"}, end_time_ns=t + 1_000)
            span.end(
                outputs=tool.get("output", {"ok": True}),
                status=SpanStatusCode.ERROR if tool.get("error") else SpanStatusCode.OK,
                end_time_ns=t + 1_000_000,
            )
            t += 2_000_000
        if exception:
            root.add_event(
                SpanEvent(
                    name="exception",
                    timestamp=t,
                    attributes={"exception.type": exception[0], "exception.message": exception[1]},
                )
            )
        outputs = (
            ({"response": response} if response is not None else None)
            if root_outputs == "__default__"
            else root_outputs
        )
        root.end(
            outputs=outputs,
            status=SpanStatusCode.ERROR if status == "ERROR" else SpanStatusCode.OK,
            end_time_ns=t0 + duration_ms * 1_000_000,
        )
        return root.trace_id

    def add_turn(
        self,
        session: str | None,
        messages: list[dict],
        response: str,
        *,
        tools: list[dict] | None = None,
        system: str | None = None,
    ) -> str:
        """One turn of a conversation traced the way a chat agent behind an endpoint is: one trace per
        request, the conversation so far in its inputs, the session in `mlflow.trace.session` metadata
        (set as an agent does, through `mlflow.update_current_trace`).

        tools: [{"name", "args", "output", "error": bool}]; system: instructions the model call is given
        """
        from mlflow.entities import SpanStatusCode, SpanType

        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(experiment_id=self.experiment_id)
        with mlflow.start_span(name="agent", span_type=SpanType.AGENT) as root:
            root.set_inputs({"messages": messages})
            if session is not None:
                mlflow.update_current_trace(metadata={"mlflow.trace.session": session})
            with mlflow.start_span(name="llm", span_type=SpanType.CHAT_MODEL) as llm:
                llm.set_inputs(
                    {"messages": ([{"role": "system", "content": system}] if system else []) + messages[-1:]}
                )
                llm.set_outputs({"content": response, "tool_calls": []})
            for tool in tools or []:
                with mlflow.start_span(name=tool["name"], span_type=SpanType.TOOL) as span:
                    span.set_inputs(tool.get("args", {}))
                    span.set_outputs(tool.get("output", {"ok": True}))
                    if tool.get("error"):
                        span.set_status(SpanStatusCode.ERROR)
            root.set_outputs({"response": response})
        return root.trace_id

    def add_conversation(
        self, session: str | None, turns: list[tuple[str, str, list[dict]]], system: str | None = None
    ) -> list[str]:
        """A conversation of (user message, answer, tools) turns, one trace per turn; `system`: instructions
        the first turn's model call is given (some agents send them once per conversation)."""
        messages: list[dict] = []
        ids = []
        for user, answer, tools in turns:
            messages = [*messages, {"role": "user", "content": user}]
            ids.append(self.add_turn(session, messages, answer, tools=tools, system=None if ids else system))
            messages = [*messages, {"role": "assistant", "content": answer}]
        return ids

    def trace(self, trace_id: str):
        from mlflow import MlflowClient

        return MlflowClient(self.uri).get_trace(trace_id)


def add_support_traces(store: TraceStore, start: int, n: int) -> list[str]:
    """`n` order-support conversations numbered from `start`: a lookup, then an address change that
    fails for every third order (so the analysis always has something to find)."""
    return [
        store.add(
            f"Where is order {i}? It was due on day {i}.",
            f"Order {i} ships tomorrow.",
            tools=[
                {"name": "get_order", "args": {"id": i}},
                {"name": "update_address", "args": {"id": i}, "error": i % 3 == 0},
            ],
        )
        for i in range(start, start + n)
    ]
