"""A loopback agent endpoint speaking two real wire protocols a candidate agent is served with:

- Databricks Model Serving: GET /api/2.0/serving-endpoints/NAME (what mlflow's deployment client
  looks up first) and POST /serving-endpoints/NAME/invocations, the request in the agent's own
  shape; when the body carries `databricks_options: {return_trace: true}` the reply carries the
  agent's trace under `databricks_output.trace`, as Databricks agent endpoints do.
- OpenAI chat completions: POST /v1/chat/completions, messages in, a chat.completion out.

`answer(request) -> (text, trace_dict or None)` decides each reply; an int text is an HTTP status.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from loopback import NOT_FOUND, JSONHandler, chat_completion, serve


class AgentServer:
    def __init__(self, answer: Callable[[dict], tuple[Any, dict | None]], return_trace: bool = True):
        self.answer, self.return_trace = answer, return_trace
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(JSONHandler):
            def do_GET(self):
                if self.path.startswith("/api/2.0/serving-endpoints/"):
                    name = self.path.rsplit("/", 1)[-1]
                    return self.send_json(200, {"name": name, "state": {"ready": "READY"}, "task": "agent/v2/chat"})
                self.send_json(404, NOT_FOUND)

            def do_POST(self):
                body = self.read_json()
                with server._lock:
                    server.calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                serving = self.path.startswith("/serving-endpoints/") and self.path.endswith("/invocations")
                if not (serving or self.path.endswith("/chat/completions")):
                    return self.send_json(404, NOT_FOUND)
                request = {k: v for k, v in body.items() if k not in ("databricks_options", "model")}
                text, trace = server.answer(request)
                if isinstance(text, int):
                    return self.send_json(text, {"error_code": "INTERNAL_ERROR", "message": "agent failed"})
                reply = chat_completion(text, body.get("model", "agent"), f"c{len(server.calls)}", usage=False)
                wants = (body.get("databricks_options") or {}).get("return_trace")
                if serving and wants and server.return_trace and trace is not None:
                    reply["databricks_output"] = {"trace": trace}
                self.send_json(200, reply)

        self.httpd, self.url, _ = serve(Handler)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
