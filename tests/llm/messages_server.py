"""A loopback HTTP server that speaks the Anthropic Messages API and plays scripted models.

The real `anthropic` client (and the real databricks-sdk auth) talk to it over 127.0.0.1, so tests
exercise the wire protocol: paths, headers, request bodies with tools and tool_result blocks,
responses with tool_use blocks, stop_reason and usage, error bodies and status codes, hangs.

A *model* is a callable `model(request) -> Reply`; `ScriptedModel` builds one from per-session
generator functions that yield content blocks and receive the next request (with the tool
results) back, so a multi-turn tool-use conversation reads top to bottom.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

MESSAGES_PATHS = ("/serving-endpoints/anthropic/v1/messages", "/v1/messages")
_ids = itertools.count(1)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None
    raw: bytes

    @property
    def system_text(self) -> str:
        system = (self.body or {}).get("system")
        if isinstance(system, list):
            return "\n".join(b.get("text", "") for b in system)
        return system or ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return (self.body or {}).get("messages", [])

    def last_tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user message, content parsed as JSON when it is."""
        last = self.messages[-1] if self.messages else {}
        out = []
        for block in last.get("content", []) if isinstance(last.get("content"), list) else []:
            if block.get("type") == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = "".join(c.get("text", "") for c in content)
                try:
                    parsed = json.loads(content)
                except (TypeError, ValueError):
                    parsed = content
                out.append({"content": parsed, "is_error": bool(block.get("is_error"))})
        return out


@dataclass
class Reply:
    """What the server sends: a Messages response body, or a fault."""

    body: dict[str, Any] | None = None
    status: int = 200
    raw: bytes | None = None  # sent as-is instead of JSON (malformed responses)
    delay_s: float = 0.0  # sleep before answering (a slow or hanging endpoint)
    headers: dict[str, str] = field(default_factory=dict)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": input}


def message(blocks: list[dict[str, Any]], request: Recorded | None = None, stop_reason: str | None = None) -> Reply:
    """A Messages API response; usage counts ~4 characters of the request per input token."""
    stop = stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
    input_tokens = len(request.raw) // 4 if request is not None else 10
    output_tokens = max(1, len(json.dumps(blocks)) // 4)
    return Reply(
        {
            "id": f"msg_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": (request.body or {}).get("model", "test") if request else "test",
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    )


def error(status: int, kind: str = "api_error", msg: str = "boom", **headers: str) -> Reply:
    return Reply({"type": "error", "error": {"type": kind, "message": msg}}, status=status, headers=dict(headers))


Session = Callable[[Recorded], Iterator[list[dict[str, Any]]]]
TASK = re.compile(r"Your task \((\w+) session\)")


class ScriptedModel:
    """Plays one generator per session; the session is read from the system prompt.

    Each generator is called with the first request, yields a list of content blocks per turn,
    and receives the next request (carrying the tool results) from `yield`. When it is exhausted
    (or a session has no script) the model answers with plain text.
    """

    def __init__(self, sessions: dict[str, Session] | None = None, default: Session | None = None):
        self.sessions = sessions or {}
        self.default = default
        self.running: dict[str, Iterator] = {}
        self.started: list[str] = []

    def __call__(self, request: Recorded) -> Reply:
        match = TASK.search(request.system_text)
        task = match.group(1) if match else "?"
        if len(request.messages) == 1:  # a fresh conversation
            script = self.sessions.get(task, self.default)
            self.started.append(task)
            if script is None:
                return message([text(f"Nothing to add for {task}.")], request)
            gen = script(request)
            self.running[task] = gen
            try:
                return message(next(gen), request)
            except StopIteration:
                return message([text("done")], request)
        gen = self.running.get(task)
        if gen is None:
            return message([text("done")], request)
        try:
            return message(gen.send(request), request)
        except StopIteration:
            self.running.pop(task, None)
            return message([text("done")], request)


class MessagesServer:
    """`with MessagesServer(model) as server:` — server.url, server.requests (Recorded)."""

    def __init__(self, model: Callable[[Recorded], Reply]):
        self.model = model
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, reply: Reply) -> None:
                if reply.delay_s:
                    outer.stopping.wait(reply.delay_s)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("request-id", f"req_{next(_ids)}")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self):  # e.g. databricks-sdk probing /.well-known/databricks-config
                outer.requests.append(
                    Recorded("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None, b"")
                )
                self._send(Reply({"error": "not found"}, status=404))

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw)
                outer.requests.append(recorded)
                if self.path not in MESSAGES_PATHS:
                    self._send(error(404, "not_found_error", f"no route {self.path}"))
                    return
                self._send(outer.model(recorded))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def __enter__(self) -> "MessagesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
