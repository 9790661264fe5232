"""A loopback agent endpoint speaking two real wire protocols a candidate agent is served with:

- Databricks Model Serving: GET /api/2.0/serving-endpoints/NAME (what mlflow's deployment client
  looks up first) and POST /serving-endpoints/NAME/invocations, the request in the agent's own
  shape; when the body carries `databricks_options: {return_trace: true}` the reply carries the
  agent's trace under `databricks_output.trace`, as Databricks agent endpoints do.
- OpenAI chat completions: POST /v1/chat/completions, messages in, a chat.completion out.

`answer(request) -> (text, trace_dict or None)` decides each reply; an int text is an HTTP status.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Callable


class AgentServer:
    def __init__(self, answer: Callable[[dict], tuple[Any, dict | None]], return_trace: bool = True):
        self.answer, self.return_trace = answer, return_trace
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/api/2.0/serving-endpoints/"):
                    name = self.path.rsplit("/", 1)[-1]
                    return self._send(200, {"name": name, "state": {"ready": "READY"}, "task": "agent/v2/chat"})
                self._send(404, {"error_code": "NOT_FOUND", "message": "no such path"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with server._lock:
                    server.calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                serving = self.path.startswith("/serving-endpoints/") and self.path.endswith("/invocations")
                if not (serving or self.path.endswith("/chat/completions")):
                    return self._send(404, {"error_code": "NOT_FOUND", "message": "no such path"})
                request = {k: v for k, v in body.items() if k not in ("databricks_options", "model")}
                text, trace = server.answer(request)
                if isinstance(text, int):
                    return self._send(text, {"error_code": "INTERNAL_ERROR", "message": "agent failed"})
                reply = {
                    "id": f"c{len(server.calls)}",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": body.get("model", "agent"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    ],
                }
                wants = (body.get("databricks_options") or {}).get("return_trace")
                if serving and wants and server.return_trace and trace is not None:
                    reply["databricks_output"] = {"trace": trace}
                self._send(200, reply)

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
