"""A loopback judge endpoint: speaks the chat-completions protocol that MLflow's judges use for
`databricks:/<endpoint>` models (POST {DATABRICKS_HOST}/serving-endpoints/chat/completions).

`answers` decides each reply from the number of the judge call (0, 1, ...): a verdict ("yes"/"no"),
or an HTTP status for a failure. `by_prompt` instead decides it from the request's messages alone
(the same prompt always gets the same verdict, whoever sends it), and the rationale then names a
digest of the prompt. Everything else (the SDK's host discovery) gets a 404.

It also serves `{url}/v1/chat/completions`, the path an AI Gateway `openai` model with
`api_base={url}/v1` calls.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from typing import Callable


class JudgeServer:
    def __init__(
        self,
        answers: Callable[[int], str | int] = lambda n: "yes",
        by_prompt: Callable[[str], str] | None = None,
    ):
        self.answers = answers
        self.by_prompt = by_prompt
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._send(404, {"error_code": "NOT_FOUND", "message": "no such path"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error_code": "NOT_FOUND", "message": "no such path"})
                with server._lock:
                    n = len(server.calls)
                    server.calls.append(
                        {"path": self.path, "body": body, "authorization": self.headers.get("Authorization")}
                    )
                if server.by_prompt is not None:
                    prompt = json.dumps(body.get("messages"), sort_keys=True)
                    answer = server.by_prompt(prompt)
                    rationale = f"judged {answer} on prompt {hashlib.sha256(prompt.encode()).hexdigest()[:12]}"
                else:
                    answer = server.answers(n)
                    rationale = f"judged {answer}"
                if isinstance(answer, int):
                    return self._send(answer, {"error_code": "PERMISSION_DENIED", "message": "invalid token"})
                content = json.dumps({"result": answer, "rationale": rationale})
                self._send(
                    200,
                    {
                        "id": f"c{n}",
                        "object": "chat.completion",
                        "created": 1700000000,
                        "model": body.get("model", "m"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )

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
