"""A loopback model server speaking OpenAI Chat Completions and Anthropic Messages.

It plays the scripted conversation (script.TURNS): the driver says which user turn is running
(`server.turn`), and the request itself says how far the turn has got (the tool results after
the last user message, or the observations in a DSPy trajectory). Every reply's token usage is
recorded, so a test can compare the tokens the traces carry with what the model reported.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from loopback import JSONHandler, serve

from . import script

_ids = itertools.count(1)


def _pieces(text: str, size: int = 12) -> list[str]:
    """Text cut into stream fragments (mid-word and mid-JSON, as a model's tokens fall)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class ModelServer:
    def __init__(self):
        self.turn = 0
        self.usage: list[tuple[int, int]] = []  # (input, output) of every non-streamed reply
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.read_json()
                server.requests.append(body)
                if self.path.rstrip("/").endswith("/messages") and body.get("stream"):
                    events = server.anthropic_events(body)
                    data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
                    self.send_body(200, data, "text/event-stream")
                elif self.path.rstrip("/").endswith("/messages"):
                    self.send_json(200, server.anthropic(body))
                elif body.get("stream"):
                    chunks = server.openai_chunks(body)
                    data = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
                    self.send_body(200, data, "text/event-stream")
                else:
                    self.send_json(200, server.openai(body))

        self.httpd, self.url, self.thread = serve(Handler, start=False)

    def __enter__(self) -> "ModelServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- what the model does next ---------------------------------------------------------------

    def next_step(self, done: int) -> script.Step | None:
        steps = script.TURNS[self.turn].steps
        return steps[done] if done < len(steps) else None

    def _usage(self, messages: list[Any], done: int) -> tuple[int, int]:
        used = (40 + 10 * len(messages), 5 + done)
        self.usage.append(used)
        return used

    # -- OpenAI Chat Completions -------------------------------------------------------------------

    @staticmethod
    def _openai_done(messages: list[dict[str, Any]]) -> int:
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        if last_user >= 0 and "[[ ## " in str(messages[last_user].get("content")):  # a DSPy adapter prompt
            return len(re.findall(r"observation_\d+", str(messages[last_user].get("content"))))
        return sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")

    def _openai_message(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        messages = body.get("messages") or []
        done = self._openai_done(messages)
        step = self.next_step(done)
        system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
        if "next_tool_name" in system:  # DSPy ReAct: choose the next tool, or finish
            name, args = (step.tool, step.args) if step else ("finish", {})
            content = (
                f"[[ ## next_thought ## ]]\nI should {name}.\n\n[[ ## next_tool_name ## ]]\n{name}\n\n"
                f"[[ ## next_tool_args ## ]]\n{json.dumps(args)}\n\n[[ ## completed ## ]]"
            )
            return {"role": "assistant", "content": content}, done
        if "[[ ## answer ## ]]" in system or "`answer`" in system:  # DSPy's extract step
            answer = script.TURNS[self.turn].answer
            content = f"[[ ## reasoning ## ]]\nDone.\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
            return {"role": "assistant", "content": content}, done
        if step is None:
            return {"role": "assistant", "content": script.TURNS[self.turn].answer}, done
        call = {
            "id": f"call_{next(_ids):06d}",
            "type": "function",
            "function": {"name": step.tool, "arguments": json.dumps(step.args)},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, done

    def openai(self, body: dict[str, Any]) -> dict[str, Any]:
        message, done = self._openai_message(body)
        tokens_in, tokens_out = self._usage(body.get("messages") or [], done)
        return {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": 1,
            "model": body.get("model", "scripted"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
        }

    def openai_chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A streamed reply, in fragments the way OpenAI streams one: the text a few words per
        chunk; a tool call's id and name first, then its arguments piece by piece. Usage only
        when the client asks for it (`include_usage`), in a last chunk without choices."""
        message, done = self._openai_message(body)
        base = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "created": 1, "model": "scripted"}
        deltas: list[dict[str, Any]] = []
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
            deltas.append({"role": "assistant", "content": None, "tool_calls": [head]})
            deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in _pieces(arguments)]
            finish = "tool_calls"
        else:
            deltas.append({"role": "assistant", "content": ""})
            deltas += [{"content": p} for p in _pieces(message["content"])]
            finish = "stop"
        chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            tokens_in, tokens_out = self._usage(body.get("messages") or [], done)
            usage = {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            }
            chunks.append({**base, "choices": [], "usage": usage})
        return chunks

    # -- Anthropic Messages ----------------------------------------------------------------------

    def anthropic(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []

        def is_user_text(m: dict[str, Any]) -> bool:
            content = m.get("content")
            return m.get("role") == "user" and (
                isinstance(content, str) or any(b.get("type") == "text" for b in content or [])
            )

        last_user = max((i for i, m in enumerate(messages) if is_user_text(m)), default=-1)
        done = sum(
            1
            for m in messages[last_user + 1 :]
            if isinstance(m.get("content"), list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        )
        step = self.next_step(done)
        if step is None:
            content = [{"type": "text", "text": script.TURNS[self.turn].answer}]
        else:
            content = [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": step.tool, "input": step.args},
            ]
        tokens_in, tokens_out = self._usage(messages, done)
        return {
            "id": f"msg_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "scripted"),
            "content": content,
            "stop_reason": "tool_use" if step else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }

    def anthropic_events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A streamed Messages reply as Anthropic sends it: message_start (input usage), each content
        block started, filled in fragments (text, or a tool call's JSON) and stopped, then
        message_delta (stop reason, output usage) and message_stop. Anthropic always sends usage."""
        reply = self.anthropic(body)
        usage = reply.pop("usage")
        start = {
            **reply,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
        }
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for i, block in enumerate(reply["content"]):
            if block["type"] == "text":
                events.append(
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
                )
                pieces = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
            else:
                empty = {**block, "input": {}}
                events.append({"type": "content_block_start", "index": i, "content_block": empty})
                pieces = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(json.dumps(block["input"]))]
            events += [{"type": "content_block_delta", "index": i, "delta": d} for d in pieces]
            events.append({"type": "content_block_stop", "index": i})
        delta = {"stop_reason": reply["stop_reason"], "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage["output_tokens"]}})
        events.append({"type": "message_stop"})
        return events
