"""Each framework plays the scripted conversation with MLflow autologging on, into a real store.

Every `run_*` function writes the traces of one layout into its own experiment of the current
tracking store and returns that experiment's id. The model behind every framework is the
loopback `ModelServer`.
"""

from __future__ import annotations

import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Generator

from . import script
from .servers import ModelServer

LAYOUTS = (
    "openai",
    "anthropic",
    "anthropic_streamed",
    "langgraph",
    "langgraph_react",
    "langgraph_streamed",
    "langgraph_astream",
    "responses_agent",
    "dspy",
    "dspy_history",
)


# litellm (under DSPy) would fetch a price list from the network on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


ARTIFACTS: list[Path] = []  # where experiments keep trace artifacts; set by `run`


def _experiment(name: str) -> str:
    import mlflow

    name = f"{name}-{uuid.uuid4().hex[:6]}"
    # Trace payloads go beside the store, not into ./mlruns of the working directory.
    location = (ARTIFACTS[-1] / name).as_uri() if ARTIFACTS else None
    return mlflow.set_experiment(experiment_id=mlflow.create_experiment(name, artifact_location=location)).experiment_id


def run_openai(server: ModelServer) -> str:
    """A plain loop over the OpenAI SDK, `mlflow.openai.autolog()`: one trace per model call."""
    import mlflow
    import openai

    exp = _experiment("openai")
    mlflow.openai.autolog()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a support agent."}]
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            messages.append({"role": "user", "content": turn.user})
            while True:
                reply = client.chat.completions.create(model="scripted", messages=messages, tools=script.tool_schemas())
                message = reply.choices[0].message
                messages.append(message.model_dump(exclude_none=True))
                if not message.tool_calls:
                    break
                for call in message.tool_calls:
                    result = script.call_tool(call.function.name, json.loads(call.function.arguments))
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    finally:
        mlflow.openai.autolog(disable=True)
    return exp


def _anthropic_tools() -> list[dict[str, Any]]:
    """The script's tools in Anthropic's schema."""
    return [
        {
            "name": s["function"]["name"],
            "description": s["function"]["description"],
            "input_schema": s["function"]["parameters"],
        }
        for s in script.tool_schemas()
    ]


def run_anthropic(server: ModelServer) -> str:
    """A plain loop over the Anthropic SDK, `mlflow.anthropic.autolog()`: one trace per model call."""

    def ask(client: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reply = client.messages.create(model="scripted", max_tokens=256, messages=messages, tools=tools)
        return [b.model_dump(exclude_none=True) for b in reply.content]

    return _anthropic_loop(server, "anthropic", ask)


def run_anthropic_streamed(server: ModelServer) -> str:
    """The Anthropic loop of `run_anthropic` with `stream=True`, the reply rebuilt from its events.

    MLflow 3.17.2's Anthropic autolog records such a call with the stream object's repr as its
    outputs and no usage (and `messages.stream()` is not traced at all): the traces carry neither
    the answers nor the tokens, only what the next call sends back."""

    def ask(client: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        partial = ""  # a tool call's input arrives as JSON in pieces
        stream = client.messages.create(model="scripted", max_tokens=256, messages=messages, tools=tools, stream=True)
        for event in stream:
            if event.type == "content_block_start":
                blocks.append(event.content_block.model_dump(exclude_none=True))
                partial = ""
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                blocks[-1]["text"] += event.delta.text
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial += event.delta.partial_json
            elif event.type == "content_block_stop" and blocks[-1]["type"] == "tool_use":
                blocks[-1]["input"] = json.loads(partial or "{}")
        return blocks

    return _anthropic_loop(server, "anthropic_streamed", ask)


def _anthropic_loop(server: ModelServer, name: str, ask: Callable[..., list[dict[str, Any]]]) -> str:
    """The script played through the Anthropic SDK, autologged; `ask` makes one model call and returns
    the reply's content blocks."""
    import anthropic
    import mlflow

    exp = _experiment(name)
    tools = _anthropic_tools()
    mlflow.anthropic.autolog()
    try:
        client = anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)
        messages: list[dict[str, Any]] = []
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            messages.append({"role": "user", "content": turn.user})
            while True:
                blocks = ask(client, messages, tools)
                messages.append({"role": "assistant", "content": blocks})
                uses = [b for b in blocks if b["type"] == "tool_use"]
                if not uses:
                    break
                results = [
                    {"type": "tool_result", "tool_use_id": u["id"], "content": script.call_tool(u["name"], u["input"])}
                    for u in uses
                ]
                messages.append({"role": "user", "content": results})
    finally:
        mlflow.anthropic.autolog(disable=True)
    return exp


def _langchain_tool(fn: Callable[..., str]) -> Any:
    """A script tool as a LangChain tool: errors come back as they are, the way the script says."""
    from langchain_core.tools import tool

    def safe(**kwargs: Any) -> str:
        return script.call_tool(fn.__name__, kwargs)

    safe.__name__, safe.__doc__ = fn.__name__, fn.__doc__
    safe.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    safe.__annotations__ = fn.__annotations__
    return tool(safe)


def run_langgraph(server: ModelServer) -> str:
    """LangChain's `create_agent` (a LangGraph graph) with a checkpointer: one trace per user turn.

    Tools raise or return errors as they are; LangChain turns a raised error into a ToolMessage
    (handled by the agent's tool node), so the conversation goes on.
    """
    import mlflow
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.memory import InMemorySaver

    exp = _experiment("langgraph")

    mlflow.langchain.autolog()
    try:
        model = ChatOpenAI(model="scripted", base_url=server.url + "/v1", api_key="test", max_retries=0)
        agent = create_agent(model, tools=[_langchain_tool(t) for t in script.TOOLS], checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "conversation-1"}}
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            agent.invoke({"messages": [{"role": "user", "content": turn.user}]}, config)
    finally:
        mlflow.langchain.autolog(disable=True)
    return exp


def run_langgraph_react(server: ModelServer) -> str:
    """LangGraph's prebuilt `create_react_agent` without a checkpointer: the caller keeps the
    conversation and sends all of it, tool calls and ToolMessages included, with each user turn."""
    import mlflow
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    exp = _experiment("langgraph_react")
    mlflow.langchain.autolog()
    try:
        model = ChatOpenAI(model="scripted", base_url=server.url + "/v1", api_key="test", max_retries=0)
        agent = create_react_agent(model, tools=[_langchain_tool(t) for t in script.TOOLS])
        messages: list[Any] = []
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            messages = agent.invoke({"messages": [*messages, {"role": "user", "content": turn.user}]})["messages"]
    finally:
        mlflow.langchain.autolog(disable=True)
    return exp


def run_langgraph_streamed(server: ModelServer) -> str:
    """The `create_agent` graph of `run_langgraph` behind a chat endpoint: a traced generator that
    streams the graph (`.stream(..., stream_mode="messages")`) and yields the answer's text as the
    model streams it (`streaming=True`, without asking for usage). MLflow keeps the yielded
    fragments as the endpoint's outputs; the graph's own spans sit beneath it."""
    import mlflow
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessageChunk
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.memory import InMemorySaver

    exp = _experiment("langgraph_streamed")
    model = ChatOpenAI(model="scripted", base_url=server.url + "/v1", api_key="test", max_retries=0, streaming=True)
    agent = create_agent(model, tools=[_langchain_tool(t) for t in script.TOOLS], checkpointer=InMemorySaver())

    @mlflow.trace(span_type="AGENT")
    def chat(message: str, thread_id: str) -> Generator[str, None, None]:
        config = {"configurable": {"thread_id": thread_id}}
        for chunk, _meta in agent.stream(
            {"messages": [{"role": "user", "content": message}]}, config, stream_mode="messages"
        ):
            if isinstance(chunk, AIMessageChunk) and isinstance(chunk.content, str) and chunk.content:
                yield chunk.content

    mlflow.langchain.autolog()
    try:
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            for _text in chat(turn.user, "conversation-streamed"):
                pass  # a chat UI shows each fragment as it arrives
    finally:
        mlflow.langchain.autolog(disable=True)
    return exp


def run_langgraph_astream(server: ModelServer) -> str:
    """LangGraph's `create_react_agent` with a checkpointer behind an async chat backend: a traced
    async generator that forwards the model's message chunks from `astream_events(version="v2")`
    (tool-call chunks too), the model asked for its usage while it streams (`stream_usage=True`:
    OpenAI's `include_usage`)."""
    import asyncio

    import mlflow
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.prebuilt import create_react_agent

    exp = _experiment("langgraph_astream")

    async def converse() -> None:
        model = ChatOpenAI(
            model="scripted",
            base_url=server.url + "/v1",
            api_key="test",
            max_retries=0,
            streaming=True,
            stream_usage=True,
        )
        agent = create_react_agent(
            model, tools=[_langchain_tool(t) for t in script.TOOLS], checkpointer=InMemorySaver()
        )

        @mlflow.trace(span_type="AGENT")
        async def chat(message: str, thread_id: str):
            config = {"configurable": {"thread_id": thread_id}}
            inputs = {"messages": [{"role": "user", "content": message}]}
            async for event in agent.astream_events(inputs, config, version="v2"):
                if event["event"] == "on_chat_model_stream":
                    yield event["data"]["chunk"]

        for i, turn in enumerate(script.TURNS):
            server.turn = i
            async for _chunk in chat(turn.user, "conversation-astream"):
                pass  # a chat backend would forward each chunk to the browser

    mlflow.langchain.autolog()
    try:
        asyncio.run(converse())  # one event loop for the whole conversation: the client keeps its connections
    finally:
        mlflow.langchain.autolog(disable=True)
    return exp


def run_dspy(server: ModelServer) -> str:
    """DSPy `ReAct` with `mlflow.dspy.autolog()`: one trace per question."""
    return _dspy(server, "dspy", with_history=False)


def run_dspy_history(server: ModelServer) -> str:
    """DSPy `ReAct` with a `history: dspy.History` input (how a DSPy chat agent keeps the conversation),
    `mlflow.dspy.autolog()`: one trace per question, the earlier turns in its inputs."""
    return _dspy(server, "dspy_history", with_history=True)


def _dspy(server: ModelServer, name: str, with_history: bool) -> str:
    import dspy
    import mlflow

    exp = _experiment(name)
    mlflow.dspy.autolog()
    try:
        lm = dspy.LM("openai/scripted", api_base=server.url + "/v1", api_key="test", cache=False, num_retries=0)
        dspy.configure(lm=lm, adapter=dspy.ChatAdapter())
        signature = "question, history: dspy.History -> answer" if with_history else "question -> answer"
        agent = dspy.ReAct(signature, tools=list(script.TOOLS))
        history: list[dict[str, Any]] = []
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            extra = {"history": dspy.History(messages=list(history))} if with_history else {}
            answer = agent(question=turn.user, **extra).answer
            history.append({"question": turn.user, "answer": answer})
    finally:
        mlflow.dspy.autolog(disable=True)
    return exp


def run_responses_agent(server: ModelServer) -> str:
    """Databricks' tool-calling `ResponsesAgent` template, reduced to its shape: a traced
    `call_llm` (LLM) span around the autologged OpenAI client, one `execute_tool` TOOL span for
    every tool, streamed without usage; the client sends the whole conversation each turn."""
    import mlflow
    import openai
    from mlflow.entities import SpanType
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent

    exp = _experiment("responses_agent")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)

    class ToolCallingAgent(ResponsesAgent):
        @mlflow.trace(span_type=SpanType.TOOL)
        def execute_tool(self, tool_name: str, args: dict) -> Any:
            return script.TOOL_BY_NAME[tool_name](**args)

        @mlflow.trace(span_type=SpanType.LLM)
        def call_llm(self, messages: list[dict[str, Any]]) -> Generator[dict[str, Any], None, None]:
            for chunk in client.chat.completions.create(
                model="scripted", messages=messages, tools=script.tool_schemas(), stream=True
            ):
                yield chunk.to_dict()

        def handle_tool_call(
            self, tool_call: dict[str, Any], messages: list[dict[str, Any]]
        ) -> ResponsesAgentStreamEvent:
            try:
                args = json.loads(tool_call["arguments"])
                result = str(self.execute_tool(tool_name=tool_call["name"], args=args))
            except Exception as exc:  # the template reports a failing tool to the model
                result = f"Error executing tool: {exc}"
            output = self.create_function_call_output_item(tool_call["call_id"], result)
            messages.append(output)
            return ResponsesAgentStreamEvent(type="response.output_item.done", item=output)

        def call_and_run_tools(self, messages: list[dict[str, Any]], max_iter: int = 10):
            for _ in range(max_iter):
                last = messages[-1]
                if last.get("role") == "assistant":
                    return
                chat = self.prep_msgs_for_cc_llm(messages)
                text, calls = "", {}
                for chunk in self.call_llm(chat):
                    delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
                    text += delta.get("content") or ""
                    for tc in delta.get("tool_calls") or []:  # id and name first, then arguments in pieces
                        call = calls.setdefault(tc["index"], {"id": tc.get("id"), "name": "", "arguments": ""})
                        call["name"] += (tc.get("function") or {}).get("name") or ""
                        call["arguments"] += (tc.get("function") or {}).get("arguments") or ""
                if calls:
                    for tc in calls.values():
                        item = self.create_function_call_item(
                            id=tc["id"], call_id=tc["id"], name=tc["name"], arguments=tc["arguments"]
                        )
                        messages.append(item)
                        yield ResponsesAgentStreamEvent(type="response.output_item.done", item=item)
                        yield self.handle_tool_call(item, messages)
                else:
                    item = self.create_text_output_item(text, str(uuid.uuid4()))
                    messages.append({"role": "assistant", "content": text})
                    yield ResponsesAgentStreamEvent(type="response.output_item.done", item=item)
                    return

        def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:
            outputs = [e.item for e in self.predict_stream(request) if e.type == "response.output_item.done"]
            return ResponsesAgentResponse(output=outputs, custom_outputs=request.custom_inputs)

        def predict_stream(self, request: ResponsesAgentRequest) -> Generator[ResponsesAgentStreamEvent, None, None]:
            messages = [{"role": "system", "content": "You are a support agent."}] + [
                i.model_dump() for i in request.input
            ]
            yield from self.call_and_run_tools(messages)

    mlflow.openai.autolog()
    try:
        agent = ToolCallingAgent()
        history: list[dict[str, Any]] = []
        for i, turn in enumerate(script.TURNS):
            server.turn = i
            history.append({"role": "user", "content": turn.user})
            response = agent.predict(ResponsesAgentRequest(input=history))
            for item in response.output:
                item = item if isinstance(item, dict) else item.model_dump()
                if item.get("type") == "message":
                    history.append({"role": "assistant", "content": item["content"][0]["text"]})
    finally:
        mlflow.openai.autolog(disable=True)
    return exp


def run(name: str, server: ModelServer, artifacts: Path) -> str:
    """Play the script through one framework; its traces are in the store when this returns.

    `artifacts`: a folder for the experiments' trace artifacts."""
    import httpx  # noqa: F401  (imported whole before a framework's client imports it from another thread)
    import mlflow

    ARTIFACTS[:] = [artifacts]
    exp = RUNNERS[name](server)
    mlflow.flush_trace_async_logging()
    return exp


RUNNERS: dict[str, Callable[[ModelServer], str]] = {
    "openai": run_openai,
    "anthropic": run_anthropic,
    "anthropic_streamed": run_anthropic_streamed,
    "langgraph": run_langgraph,
    "langgraph_react": run_langgraph_react,
    "langgraph_streamed": run_langgraph_streamed,
    "langgraph_astream": run_langgraph_astream,
    "responses_agent": run_responses_agent,
    "dspy": run_dspy,
    "dspy_history": run_dspy_history,
}
