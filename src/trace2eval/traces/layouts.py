"""How agent frameworks lay out spans and messages: the one place that knows.

`features.py` reads every trace through these helpers, so a new layout is taught here, once.
Like `features.py`, this file is copied into the generated suite (before it), so it uses the
standard library only and reads payloads by duck typing. One small adapter per layout:

- MLflow's plain layout: TOOL spans named after the tool, CHAT_MODEL spans with `{"messages"}`.
- Databricks' tool-calling `ResponsesAgent` template: one `execute_tool` TOOL span whose inputs
  are `{"tool_name", "args"}`; root inputs `{"request": {..., "input": [...]}}` (Responses items,
  `null` fields), outputs `{"output": [items]}`; an `LLM` span wrapping a `CHAT_MODEL` span whose
  output is a list of streamed chunks.
- DSPy `ReAct`: tool spans named `Tool.<name>`; the LM spans' messages are adapter prompts
  (`[[ ## question ## ]]`), not user turns; `Predict` (LLM) spans wrap `LM` (CHAT_MODEL) spans.
- LangGraph / LangChain agents: tools return ToolMessages `{"content", "status"}` whose content
  can carry the error; root outputs are the graph state (the answer is its last AI message).
- Bare `anthropic` / `openai` autolog loops: no TOOL spans, one trace per model call; tool calls
  exist only as `tool_use` / `tool_result` blocks or `tool_calls` + role `tool` messages.
- DSPy with a `history: dspy.History` input: the earlier turns as dicts of the signature's
  fields under `history.messages` (`carried_messages`).
- Streamed: a traced generator (a chat endpoint streaming an agent) without an output reducer
  keeps what it yielded as its outputs, a list of pieces: text fragments, OpenAI chunks,
  LangChain message chunks (`(chunk, metadata)` pairs from LangGraph's `stream_mode="messages"`),
  ChatAgent `{"delta"}` chunks, LangGraph `updates` / `values`. The answer is the pieces merged.
"""

from __future__ import annotations

import json
import re
from typing import Any

ERROR_TEXT = re.compile(
    r"^\s*(?:error\b|exception\b|traceback\b|failed\b|failure\b|\{?\s*\"?error\"?\s*:)", re.IGNORECASE
)
# Text a framework writes into a tool result when the tool raised (DSPy, the ResponsesAgent template).
_ERROR_PREFIX = re.compile(r"^\s*(?:execution error in\b|error (?:executing|calling|running) tool\b)", re.IGNORECASE)
# DSPy's adapters frame every field as `[[ ## name ## ]]`: such a "user" message is a prompt, not a person.
ADAPTER_PROMPT = re.compile(r"\[\[ ## \w+ ## \]\]")
# Span names of a generic dispatcher that runs whichever tool its inputs name.
_DISPATCHER = re.compile(r"^(?:execute|call|run|invoke|dispatch|handle)_?(?:tool|function)s?(?:_call)?$", re.IGNORECASE)
_TOOL_NAME_KEYS = ("tool_name", "function_name", "name", "tool")
_TOOL_ARG_KEYS = ("args", "arguments", "tool_args", "tool_input", "input", "parameters", "kwargs")
_TOOL_NAME_ATTRIBUTES = ("gen_ai.tool.name", "tool.name", "tool_name", "name")
# Prefixes frameworks put before a tool's own name in a span name (DSPy: `Tool.cancel_order`).
_NAME_PREFIXES = ("tool", "tools", "function", "functions", "mcp")
# What an integration records when it could not serialize an output: the object's default repr
# (`<anthropic.Stream object at 0x7f…>`: MLflow's Anthropic autolog on `stream=True`). It says nothing.
_UNREAD_OUTPUT = re.compile(r"^<[\w.]+ object at 0x[0-9a-fA-F]+>$")
_ROLES = {"human": "user", "ai": "assistant", "aimessagechunk": "assistant", "tool": "tool", "system": "system"}
_TEXT_BLOCKS = {"text", "input_text", "output_text"}


# ---------------------------------------------------------------------------------------------
# Tool identity


def tool_identity(name: str, inputs: Any, attribute: Any = None) -> tuple[str, Any]:
    """The tool a TOOL span ran, and its arguments.

    A dispatcher span (`execute_tool`) names the real tool in its inputs; DSPy prefixes the
    name (`Tool.cancel_order`); some integrations put it in an attribute. `attribute(key)` reads
    a span attribute.
    """
    if isinstance(inputs, dict):
        named = None
        if _DISPATCHER.match(name):
            named = next((inputs[k] for k in _TOOL_NAME_KEYS if isinstance(inputs.get(k), str)), None)
        elif isinstance(inputs.get("tool_name"), str) and any(k in inputs for k in _TOOL_ARG_KEYS):
            named = inputs["tool_name"]  # a dispatcher by another name: {"tool_name", "args"}
        if isinstance(named, str) and named:
            args = next((inputs[k] for k in _TOOL_ARG_KEYS if k in inputs), None)
            if args is None:
                args = {k: v for k, v in inputs.items() if k not in _TOOL_NAME_KEYS}
            return named, _parsed(args)
    if attribute is not None and _DISPATCHER.match(name):
        for key in _TOOL_NAME_ATTRIBUTES:
            value = attribute(key)
            if isinstance(value, str) and value:
                return value, inputs
    prefix, dot, rest = name.partition(".")
    if dot and rest and prefix.lower() in _NAME_PREFIXES:
        return rest, inputs
    return name, inputs


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


# ---------------------------------------------------------------------------------------------
# Tool results


def result_failed(output: Any, depth: int = 0) -> bool:
    """Whether a tool's result says it failed, in the shapes frameworks use.

    `{"error": ...}`, `{"status": "error"}`, Anthropic's `is_error`, MCP's `isError`, a LangChain
    ToolMessage (`status` is "success" even when the content is an error), JSON text of those,
    content blocks, and error text ("Error: ...", "Execution error in ...").
    """
    if depth > 4:
        return False
    if isinstance(output, dict):
        if output.get("error") or output.get("is_error") is True or output.get("isError") is True:
            return True
        if str(output.get("status", "")).lower() in {"error", "failed", "failure"}:
            return True
        for key in ("content", "output", "result"):
            if key in output and result_failed(output[key], depth + 1):
                return True
        return False
    if isinstance(output, list):
        text = " ".join(b.get("text", "") for b in output if isinstance(b, dict) and isinstance(b.get("text"), str))
        return bool(text) and result_failed(text, depth + 1)
    if isinstance(output, str):
        if ERROR_TEXT.match(output) or _ERROR_PREFIX.match(output):
            return True
        parsed = _parsed(output.strip())
        return not isinstance(parsed, str) and result_failed(parsed, depth + 1)
    return False


# ---------------------------------------------------------------------------------------------
# Messages in any of the common shapes


class Message:
    """One chat message, whatever its shape: role, text, tool calls made, tool results carried."""

    __slots__ = ("role", "text", "calls", "results")

    def __init__(self, role: str, text: str, calls: list[dict[str, Any]], results: list[dict[str, Any]]):
        self.role, self.text, self.calls, self.results = role, text, calls, results

    @property
    def is_user_turn(self) -> bool:
        """A person speaking: a user message with text, not only tool results, not an adapter prompt."""
        return self.role == "user" and bool(self.text.strip()) and not ADAPTER_PROMPT.search(self.text)


def read_message(raw: Any) -> Message | None:
    """A message from OpenAI chat, Anthropic, LangChain or Responses-item form."""
    if not isinstance(raw, dict):
        return None
    kind = str(raw.get("type") or "")
    if kind == "function_call":  # Responses output item
        call = {
            "id": raw.get("call_id") or raw.get("id"),
            "name": raw.get("name"),
            "args": _parsed(raw.get("arguments")),
        }
        return Message("assistant", "", [call], [])
    if kind == "function_call_output":
        return Message("tool", "", [], [_result(raw.get("call_id"), raw.get("output"))])
    role = str(raw.get("role") or _ROLES.get(kind.lower(), kind) or "").lower()
    text_parts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    content = raw.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                text_parts.append(block)
            elif isinstance(block, dict):
                btype = block.get("type")
                if btype in _TEXT_BLOCKS or (btype is None and isinstance(block.get("text"), str)):
                    text_parts.append(str(block.get("text") or ""))
                elif btype == "tool_use":
                    calls.append({"id": block.get("id"), "name": block.get("name"), "args": block.get("input")})
                elif btype == "tool_result":
                    results.append(_result(block.get("tool_use_id"), block.get("content"), block.get("is_error")))
    elif content is not None and role not in ("tool", "function"):
        text_parts.append(str(content))
    for call in raw.get("tool_calls") or []:
        if isinstance(call, dict):
            fn = call.get("function") if isinstance(call.get("function"), dict) else call
            args = fn.get("arguments", fn.get("args"))
            calls.append({"id": call.get("id"), "name": fn.get("name"), "args": _parsed(args)})
    if role in ("tool", "function"):
        failed = str(raw.get("status", "")).lower() == "error" or None
        results.append(_result(raw.get("tool_call_id") or raw.get("name"), content, failed))
    # Plain text content stays as written; blocks are joined
    text = (
        content
        if isinstance(content, str) and role not in ("tool", "function")
        else " ".join(p for p in text_parts if p).strip()
    )
    return Message(role, text, calls, results)


def _result(call_id: Any, content: Any, failed: Any = None) -> dict[str, Any]:
    if isinstance(content, list):
        content = " ".join(
            str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content if b is not None
        ).strip()
    return {"id": call_id, "content": content, "failed": bool(failed) or result_failed(content)}


def read_messages(value: Any) -> list[Message]:
    """The messages in an LLM span's inputs, or in a request's `messages` / Responses `input`."""
    if isinstance(value, dict):
        if isinstance(value.get("request"), dict):
            value = value["request"]
        value = value.get("messages") if value.get("messages") is not None else value.get("input")
    if isinstance(value, list) and value and isinstance(value[0], list):  # LangChain batches: [[...]]
        value = value[0]
    if not isinstance(value, list):
        return []
    return [m for m in (read_message(x) for x in value) if m is not None]


def llm_reply(outputs: Any) -> Message | None:
    """What an LLM span said: OpenAI chat (also streamed chunks), Anthropic, Responses, plain text."""
    if isinstance(outputs, str):
        return None if _UNREAD_OUTPUT.match(outputs) else Message("assistant", outputs, [], [])
    if isinstance(outputs, list) and outputs:
        if all(isinstance(c, dict) and "choices" in c for c in outputs):  # streamed chunks
            text, calls = "", {}
            for chunk in outputs:
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text += delta.get("content") or ""
                    for tc in delta.get("tool_calls") or []:
                        slot = calls.setdefault(tc.get("index", 0), {"id": None, "name": "", "args": ""})
                        fn = tc.get("function") or {}
                        slot["id"] = slot["id"] or tc.get("id")
                        slot["name"] += fn.get("name") or ""
                        slot["args"] += fn.get("arguments") or ""
            found = [{"id": c["id"], "name": c["name"], "args": _parsed(c["args"])} for c in calls.values()]
            return Message("assistant", text, found, [])
        if all(isinstance(x, str) for x in outputs):  # DSPy's LM: a list of completions
            return Message("assistant", str(outputs[0]), [], [])
        return llm_reply(outputs[-1])
    if not isinstance(outputs, dict):
        return None
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return read_message(choices[0].get("message") or choices[0].get("delta") or {})
    if isinstance(outputs.get("output"), list):
        items = [read_message(x) for x in outputs["output"]]
        messages = [m for m in items if m is not None and m.role == "assistant"]
        text = next((m.text for m in reversed(messages) if m.text), "")
        return Message("assistant", text, [c for m in messages for c in m.calls], [])
    if "content" in outputs or outputs.get("role") == "assistant" or outputs.get("type") in ("ai", "message"):
        return read_message({"role": "assistant", **outputs})
    return None


# ---------------------------------------------------------------------------------------------
# Requests and answers


def unwrap_request(inputs: Any) -> Any:
    """A request without its envelope: `{"request": {...}}` (ResponsesAgent), `null` fields dropped."""
    if isinstance(inputs, dict):
        if isinstance(inputs.get("request"), dict) and all(v is None or k == "request" for k, v in inputs.items()):
            inputs = inputs["request"]
        if any(v is None for v in inputs.values()):
            inputs = {k: v for k, v in inputs.items() if v is not None}
    return inputs


def carried_messages(inputs: Any) -> list[Message]:
    """The conversation a request carries: its message list, or a DSPy `dspy.History` field.

    A DSPy program with a `history: dspy.History` input gets `{"messages": [{field: value}, ...]}`,
    one dict per earlier turn holding the signature's input fields (the names this request has
    too) and its output fields. Read as user and assistant messages, this request's own input
    fields last: the current user turn.
    """
    inputs = unwrap_request(inputs)
    if not isinstance(inputs, dict):
        return []
    history = inputs.get("history")
    turns = history.get("messages") if isinstance(history, dict) else None
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return read_messages(inputs)
    fields = [k for k in inputs if k != "history"]

    def said(values: dict[str, Any], keys: list[str]) -> str:
        return "\n".join(str(values[k]) for k in keys if isinstance(values.get(k), (str, int, float)))

    messages = []
    for turn in turns:
        for role, keys in (
            ("user", [k for k in turn if k in fields]),
            ("assistant", [k for k in turn if k not in fields]),
        ):
            text = said(turn, keys)
            if text:
                messages.append(Message(role, text, [], []))
    current = said(inputs, fields)
    return messages + [Message("user", current, [], [])] if current else messages


def request_from_messages(inputs: Any) -> str | None:
    """The last thing a person said in a message list (Responses `input` too); None without one."""
    if not isinstance(inputs, dict):
        return None
    raw = inputs.get("messages") if inputs.get("messages") is not None else inputs.get("input")
    if not isinstance(raw, list) or not raw:
        return None
    messages = read_messages(raw)
    users = [m for m in messages if m.is_user_turn]
    if users:
        return users[-1].text
    return messages[-1].text if messages else ""


def answer_from_outputs(outputs: Any) -> str | None:
    """The answer in layouts whose outputs are not the answer itself; None for other shapes.

    Responses `{"output": [items]}`: the last message item's text. LangGraph state
    `{"messages": [...]}`: the last AI message. An Anthropic or OpenAI reply that asks for tools
    answers nothing yet; nor does an output the integration could not serialize (a stream's repr).
    """
    if isinstance(outputs, str):
        return "" if _UNREAD_OUTPUT.match(outputs) else None
    if isinstance(outputs, list):
        return stream_answer(outputs)
    if not isinstance(outputs, dict):
        return None
    items = outputs.get("output")
    if isinstance(items, list) and items and all(isinstance(x, dict) and "type" in x for x in items):
        reply = llm_reply(outputs)
        return reply.text if reply is not None else ""
    if outputs.get("stop_reason") == "tool_use" and isinstance(outputs.get("content"), list):
        return ""
    if isinstance(outputs.get("content"), list) and outputs.get("role") == "assistant":
        reply = read_message(outputs)
        return reply.text if reply is not None else ""
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reply = llm_reply(outputs)
        return reply.text if reply is not None else ""
    state = outputs.get("messages")
    if isinstance(state, list) and state and not any(k in outputs for k in ("response", "answer", "output")):
        for raw in reversed(state):
            message = read_message(raw)
            if message is not None and message.role == "assistant" and message.text:
                return message.text
        return ""
    return None


def stream_answer(pieces: list[Any]) -> str | None:
    """The answer in the pieces a streamed output yielded; None when they are not stream pieces.

    Text fragments join as they were shown. Message chunks merge by message (their `id`, or one
    run of chunks without ids) and the answer is the last assistant message with text, so the
    tool-call chunks and tool results streamed before it are not the answer. LangGraph `values`
    (whole states) answer with the last state, `updates` with the messages the nodes returned.
    """
    if not pieces:
        return None
    if all(isinstance(p, str) for p in pieces):
        return "".join(pieces)
    if all(isinstance(p, dict) and "choices" in p for p in pieces):  # OpenAI chat chunks
        reply = llm_reply(pieces)
        return reply.text if reply is not None else ""
    if all(isinstance(p, dict) and isinstance(p.get("messages"), list) for p in pieces):  # LangGraph values
        return answer_from_outputs(pieces[-1])
    messages: list[tuple[dict[str, Any], bool]] = []  # (message, is a chunk of it)
    for piece in pieces:
        if isinstance(piece, (list, tuple)) and len(piece) == 2 and isinstance(piece[0], str):
            piece = piece[1]  # several stream modes at once: (mode, data)
        if isinstance(piece, (list, tuple)) and len(piece) == 2 and isinstance(piece[1], dict):
            piece = piece[0]  # LangGraph `messages` mode: (message chunk, metadata)
        if not isinstance(piece, dict):
            return None
        if isinstance(piece.get("delta"), dict):  # ChatAgent chunk
            messages.append((piece["delta"], True))
            continue
        updates = [v["messages"] for v in piece.values() if isinstance(v, dict) and isinstance(v.get("messages"), list)]
        if updates and not ("role" in piece or "type" in piece):  # LangGraph `updates`: {node: {"messages"}}
            messages += [(m, False) for ms in updates for m in ms if isinstance(m, dict)]
        elif "content" in piece and ("role" in piece or "type" in piece):
            messages.append((piece, str(piece.get("type", "")).endswith("Chunk")))
        else:
            return None
    answer, current, said = "", object(), ""
    for raw, chunk in messages:
        message = read_message(raw)
        if message is None or message.role != "assistant":
            current, said = object(), ""
            continue
        key = raw.get("id") or current  # chunks of one message share its id
        # a whole message after its own chunks (`messages` and `updates` modes together) replaces them
        said = (said if key == current else "") + _fragment(raw) if chunk else message.text
        current = key
        answer = said or answer
    return answer


def _fragment(chunk: dict[str, Any]) -> str:
    """A chunk's text as streamed, spaces kept at its ends (content blocks too: LangChain's Anthropic chunks)."""
    content = chunk.get("content")
    if isinstance(content, list):
        return "".join(
            str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") in _TEXT_BLOCKS
        )
    return content if isinstance(content, str) else ""
