"""A loopback judge endpoint: speaks the chat-completions protocol that MLflow's judges use for
`databricks:/<endpoint>` models (POST {DATABRICKS_HOST}/serving-endpoints/chat/completions).

`answers` decides each reply from the number of the judge call (0, 1, ...): a verdict ("yes"/"no",
or True/False for a `make_judge` judge of type bool), or an HTTP status for a failure. `by_prompt`
instead decides it from the request's messages alone (the same prompt always gets the same verdict,
whoever sends it), and the rationale then names a digest of the prompt. Everything else (the SDK's host discovery) gets a 404.

It also serves `{url}/v1/chat/completions`, the path an AI Gateway `openai` model with
`api_base={url}/v1` calls.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Callable

from loopback import NOT_FOUND, JSONHandler, chat_completion, serve


class JudgeServer:
    def __init__(
        self,
        answers: Callable[[int], str | int | bool] = lambda n: "yes",
        by_prompt: Callable[[str], str] | None = None,
    ):
        self.answers = answers
        self.by_prompt = by_prompt
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(JSONHandler):
            def do_GET(self):
                self.send_json(404, NOT_FOUND)

            def do_POST(self):
                body = self.read_json()
                if not self.path.endswith("/chat/completions"):
                    return self.send_json(404, NOT_FOUND)
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
                if isinstance(answer, int) and not isinstance(answer, bool):  # a bool is a verdict (make_judge's)
                    return self.send_json(answer, {"error_code": "PERMISSION_DENIED", "message": "invalid token"})
                content = json.dumps({"result": answer, "rationale": rationale})
                self.send_json(200, chat_completion(content, body.get("model", "m"), f"c{n}"))

        self.httpd, self.url, _ = serve(Handler)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
