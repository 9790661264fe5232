"""The tool-use loop on the Messages API: send, run the tool calls, send the results, repeat.

It stops when the model calls `finish` or answers without tool calls, or early when a budget is
reached, when the model keeps sending malformed/unknown tool calls, or keeps repeating the same
call. Old tool results are elided when the conversation grows large, and the stable prefix
(system prompt with the skill, tool definitions, the conversation so far) carries prompt-cache
breakpoints so each turn re-reads it from cache where the endpoint supports that.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from trace2eval.errors import LLMUnavailable
from trace2eval.llm.budget import Budget, Usage
from trace2eval.llm.calls import RequestRejected, send
from trace2eval.llm.clients import LLMClient
from trace2eval.llm.tools import ToolBox, ToolResult

MAX_BAD_TURNS = 3  # turns in a row in which every tool call was malformed or unknown
MAX_SAME_CALL = 2  # the same call (tool + input) is answered this many times, then refused
MAX_REPEAT_REFUSALS = 4  # refused repeats before the session is ended as a loop
CONTEXT_CHARS = 160_000  # above this, older tool results are elided (about 40k tokens)
KEEP_RECENT_MESSAGES = 6
ELIDED = "[elided to keep the conversation small: call the tool again if you need this]"
CACHE = {"type": "ephemeral"}


@dataclass
class LoopResult:
    stop: str  # finished | end_turn | budget | malformed | repeating | rejected | unavailable
    turns: int
    usage: Usage
    tool_calls: Counter = field(default_factory=Counter)
    final_text: str = ""
    reason: str | None = None


def _dump(block: Any) -> dict[str, Any]:
    """A response block as it is sent back in the next request. A tool_use whose input is not an
    object is echoed with an empty input: the API would reject the conversation otherwise."""
    data = (
        block.model_dump(mode="json", exclude_none=True, warnings=False)
        if hasattr(block, "model_dump")
        else dict(block)
    )
    if data.get("type") == "tool_use" and not isinstance(data.get("input"), dict):
        data["input"] = {}
    return data


def _size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":")))


def _elide(messages: list[dict[str, Any]]) -> None:
    """Shorten the oldest tool results until the conversation fits CONTEXT_CHARS again."""
    if _size(messages) <= CONTEXT_CHARS:
        return
    for message in messages[:-KEEP_RECENT_MESSAGES]:
        if message["role"] != "user" or not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result" and len(str(block.get("content", ""))) > 400:
                block["content"] = ELIDED
        if _size(messages) <= CONTEXT_CHARS * 0.7:
            return


def _with_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy whose last user message carries a cache breakpoint (the prefix before it is reused)."""
    out = copy.deepcopy(messages)
    last = out[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    if last["content"]:
        last["content"][-1]["cache_control"] = CACHE
    return out


def build_request(
    client: LLMClient,
    system: str,
    tools: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    max_tokens: int,
    cache: bool,
) -> dict[str, Any]:
    system_blocks = [{"type": "text", "text": system, **({"cache_control": CACHE} if cache else {})}]
    tools = copy.deepcopy(tools)
    if cache and tools:
        tools[-1]["cache_control"] = CACHE
    return {
        "model": client.endpoint.model,
        "max_tokens": max_tokens,
        "system": system_blocks,
        "tools": tools,
        "messages": _with_breakpoint(messages) if cache else messages,
    }


def run_loop(
    client: LLMClient,
    *,
    system: str,
    first_message: str,
    toolbox: ToolBox,
    budget: Budget,
    max_tokens: int,
    cache: bool = True,
) -> LoopResult:
    """Converse until the model is done or a limit is reached; tool calls go to `toolbox`."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": first_message}]
    usage = Usage()
    calls: Counter = Counter()
    same_call: Counter = Counter()
    turns = bad_turns = repeat_refusals = 0
    definitions = toolbox.definitions()

    def result(stop: str, text: str = "", reason: str | None = None) -> LoopResult:
        return LoopResult(stop, turns, usage, calls, text, reason)

    while True:
        request = build_request(client, system, definitions, messages, max_tokens, cache)
        chars = _size(request)
        if (why := budget.stop_reason(turns, usage, chars)) is not None:
            return result("budget", reason=why)
        try:
            response = send(client, request, budget.deadline)
        except RequestRejected as exc:
            if cache and "cache" in str(exc).lower():
                cache = False  # an endpoint without prompt caching: ask again without the markers
                continue
            return result("rejected", reason=f"the endpoint rejected the request ({exc})")
        except LLMUnavailable as exc:
            return result("unavailable", reason=str(exc))
        turns += 1
        usage.requests += 1
        usage.chars_sent += chars
        usage.add_response(getattr(response, "usage", None) or {})
        blocks = list(getattr(response, "content", None) or [])
        messages.append(
            {"role": "assistant", "content": [_dump(b) for b in blocks] or [{"type": "text", "text": "(empty)"}]}
        )
        text = "\n".join(getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text").strip()
        uses = [b for b in blocks if getattr(b, "type", "") == "tool_use"]
        if not uses:
            if getattr(response, "stop_reason", None) == "max_tokens":
                bad_turns += 1
                if bad_turns >= MAX_BAD_TURNS:
                    return result("malformed", text, "the model's replies kept hitting the output token limit")
                messages.append(
                    {
                        "role": "user",
                        "content": "Your reply was cut off at the output limit. Submit in "
                        "smaller pieces (fewer rows or one scorer per call).",
                    }
                )
                continue
            return result("end_turn", text)

        results, malformed = [], 0
        for use in uses:
            name, args = getattr(use, "name", ""), getattr(use, "input", None)
            calls[name] += 1
            key = f"{name}:{json.dumps(args, sort_keys=True, default=str)}"
            same_call[key] += 1
            if same_call[key] > MAX_SAME_CALL:
                repeat_refusals += 1
                outcome = ToolResult(
                    "you already made this exact call; its result has not changed. Do something else or call finish.",
                    True,
                )
            else:
                outcome = toolbox.call(name, args)
            malformed += outcome.malformed
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": getattr(use, "id", None) or "missing-id",
                    "content": outcome.content,
                    **({"is_error": True} if outcome.is_error else {}),
                }
            )
        messages.append({"role": "user", "content": results})
        if toolbox.ctx.finished is not None:
            return result("finished", toolbox.ctx.finished or text)
        bad_turns = bad_turns + 1 if malformed == len(uses) else 0
        if bad_turns >= MAX_BAD_TURNS:
            return result(
                "malformed", text, f"the model sent only malformed or unknown tool calls {bad_turns} turns in a row"
            )
        if repeat_refusals >= MAX_REPEAT_REFUSALS:
            return result("repeating", text, "the model kept repeating the same tool calls")
        _elide(messages)
