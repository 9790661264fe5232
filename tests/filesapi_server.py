"""A loopback HTTP server that speaks the Databricks Files API for UC Volumes (enough of it for the
real `databricks-sdk` client): the wire protocol, status codes and error bodies are the workspace's.

    PUT    /api/2.0/fs/files/Volumes/...?overwrite=true|false   body = raw bytes    204 | 409
    GET    /api/2.0/fs/files/Volumes/...                         200 octet-stream   | 404
    HEAD   /api/2.0/fs/files/Volumes/...                         200 headers        | 404
    DELETE /api/2.0/fs/files/Volumes/...                         204                | 404
    GET    /api/2.0/fs/directories/Volumes/...?page_token=       {"contents": [...], "next_page_token"}
    PUT / HEAD / DELETE /api/2.0/fs/directories/Volumes/...

Files live in memory. Every request is logged (method, path, status) so tests can assert what the
client sent; `deny` makes paths under a prefix answer 403 like a missing grant.
"""

from __future__ import annotations

import json
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "dapi-loopback-test-token"
WORKSPACE_ID = "1234567890123456"
PAGE_SIZE = 3  # small, so listing really pages


class FilesApiState:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.log: list[tuple[str, str, int]] = []
        self.deny: list[str] = []
        self.workspace_headers: set[str | None] = set()
        self.lock = threading.Lock()

    def mkdirs(self, path: str) -> None:
        p = PurePosixPath(path)
        for parent in [p, *p.parents]:
            if str(parent) in ("/", "/Volumes"):
                break
            self.dirs.add(str(parent))

    def children(self, path: str) -> list[dict]:
        out = []
        prefix = path.rstrip("/") + "/"
        for d in sorted(self.dirs):
            if d.startswith(prefix) and "/" not in d[len(prefix) :]:
                out.append({"path": d + "/", "is_directory": True, "name": PurePosixPath(d).name})
        for f, data in sorted(self.files.items()):
            if f.startswith(prefix) and "/" not in f[len(prefix) :]:
                out.append(
                    {
                        "path": f,
                        "is_directory": False,
                        "file_size": len(data),
                        "last_modified": 1767225600000,
                        "name": PurePosixPath(f).name,
                    }
                )
        return out


def make_handler(state: FilesApiState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(
            self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None
        ):
            state.log.append((self.command, urlparse(self.path).path, status))
            state.workspace_headers.add(self.headers.get("X-Databricks-Workspace-Id"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str):
            self._send(status, json.dumps({"error_code": code, "message": message}).encode())

        def _route(self):
            url = urlparse(self.path)
            if url.path == "/.well-known/databricks-config":  # unauthenticated host metadata, as a workspace serves it
                host = f"http://{self.headers.get('Host')}"
                return (
                    None,
                    None,
                    self._send(
                        200,
                        json.dumps(
                            {"oidc_endpoint": f"{host}/oidc", "workspace_id": WORKSPACE_ID, "cloud": "aws"}
                        ).encode(),
                    ),
                )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return None, None, self._error(401, "UNAUTHENTICATED", "Invalid access token.")
            for kind in ("files", "directories"):
                prefix = f"/api/2.0/fs/{kind}"
                if url.path.startswith(prefix + "/Volumes/"):
                    path = unquote(url.path[len(prefix) :]).rstrip("/") or "/"
                    if any(path.startswith(d) for d in state.deny):
                        return (
                            None,
                            None,
                            self._error(403, "PERMISSION_DENIED", f"User does not have READ VOLUME on {path}."),
                        )
                    return kind, path, None
            return None, None, self._error(404, "NOT_FOUND", f"No API found for '{self.command} {url.path}'")

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_PUT(self):  # noqa: N802
            body = self._body()
            kind, path, _ = self._route()
            if kind is None:
                return
            with state.lock:
                if kind == "directories":
                    state.mkdirs(path)
                    return self._send(204)
                overwrite = parse_qs(urlparse(self.path).query).get("overwrite", ["true"])[0] != "false"
                if path in state.files and not overwrite:
                    return self._error(409, "ALREADY_EXISTS", f"The file being created already exists: {path}")
                state.files[path] = body
                state.mkdirs(str(PurePosixPath(path).parent))  # parents are created implicitly
            self._send(204)

        def do_GET(self):  # noqa: N802
            kind, path, _ = self._route()
            if kind is None:
                return
            with state.lock:
                if kind == "files":
                    if path not in state.files:
                        return self._error(404, "NOT_FOUND", f"The file being accessed is not found: {path}")
                    return self._send(
                        200, state.files[path], "application/octet-stream", {"Last-Modified": formatdate(usegmt=True)}
                    )
                if path not in state.dirs:
                    return self._error(404, "NOT_FOUND", f"The directory being accessed is not found: {path}")
                entries = state.children(path)
            start = int(parse_qs(urlparse(self.path).query).get("page_token", ["0"])[0])
            page = entries[start : start + PAGE_SIZE]
            doc = {"contents": page}
            if start + PAGE_SIZE < len(entries):
                doc["next_page_token"] = str(start + PAGE_SIZE)
            self._send(200, json.dumps(doc).encode())

        def do_HEAD(self):  # noqa: N802
            kind, path, _ = self._route()
            if kind is None:
                return
            exists = path in (state.files if kind == "files" else state.dirs)
            if not exists:
                return self._send(404)
            size = len(state.files[path]) if kind == "files" else 0
            self._send(
                200, b"", "application/octet-stream", {"Last-Modified": formatdate(usegmt=True), "X-Size": str(size)}
            )

        def do_DELETE(self):  # noqa: N802
            kind, path, _ = self._route()
            if kind is None:
                return
            with state.lock:
                if kind == "files":
                    if state.files.pop(path, None) is None:
                        return self._error(404, "NOT_FOUND", f"The file being accessed is not found: {path}")
                else:
                    if state.children(path):
                        return self._error(400, "DIRECTORY_NOT_EMPTY", f"Directory is not empty: {path}")
                    state.dirs.discard(path)
            self._send(204)

    return Handler


class FilesApiServer:
    """`with FilesApiServer() as server:` → server.url, server.state."""

    def __init__(self):
        self.state = FilesApiState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FilesApiServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_volume(self, path: str) -> None:
        self.state.mkdirs(path)

    def requests(self, method: str | None = None) -> list[tuple[str, str, int]]:
        return [r for r in self.state.log if method is None or r[0] == method]


TEST_VOLUME = "/Volumes/main/evals/state"


def serve_workspace(monkeypatch, tmp_path):
    """A loopback workspace with one Volume (TEST_VOLUME), the SDK's auth chain pointed at it.

    A generator for a pytest fixture: `yield from serve_workspace(monkeypatch, tmp_path)`."""
    with FilesApiServer() as server:
        server.add_volume(TEST_VOLUME)
        monkeypatch.setenv("DATABRICKS_HOST", server.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
        monkeypatch.delenv("DATABRICKS_CONFIG_PROFILE", raising=False)
        monkeypatch.setenv("TRACE2EVAL_CACHE_DIR", str(tmp_path / "cache"))
        yield server
