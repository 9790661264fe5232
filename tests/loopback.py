"""What the loopback test servers share: a quiet handler that reads and writes JSON, the
chat-completion reply of the OpenAI wire format, and serving on a free port of 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

NOT_FOUND = {"error_code": "NOT_FOUND", "message": "no such path"}


class JSONHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet: the tests assert on what was served
        pass

    def read_json(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

    def send_json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")

    def send_body(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def chat_completion(content: str, model: str = "m", reply_id: str = "c", usage: bool = True) -> dict[str, Any]:
    """An OpenAI `chat.completion` carrying one assistant message."""
    reply: dict[str, Any] = {
        "id": reply_id,
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
    }
    if usage:
        reply["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return reply


def serve(handler: type[http.server.BaseHTTPRequestHandler], start: bool = True):
    """(server, url, thread) for `handler` on a free port of 127.0.0.1, serving in a daemon thread."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    if start:
        thread.start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}", thread
