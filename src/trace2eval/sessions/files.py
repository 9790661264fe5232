"""Atomic file writes and reads for session state.

Every write goes to a temporary file in the same folder and is renamed over the target, so a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from trace2eval.errors import SessionError

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_text(path: Path, text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from trace text: U+FFFD instead of a crash
        data = utf8_text(text).encode("utf-8")
    write_bytes(path, data)


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; session files are meant to be shared
        except OSError:
            pass  # file systems without POSIX modes (a UC Volume's FUSE mount) refuse chmod; nothing lost
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno:
            # A failed write (disk full) names no file; the user needs to know which one.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


MAX_DEPTH = 100  # deeper JSON is cut: state files never need it, and json recursion limits bite near 1000


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text of `data`, whatever trace text it holds.

    NaN and Infinity are not JSON (other readers reject them): they become null. Lone surrogates
    become U+FFFD, NUL stays escaped, and nesting deeper than MAX_DEPTH is cut with a marker
    string. The plain dump is tried first: nearly every value needs none of it.
    """
    try:
        text = json.dumps(data, indent=indent, ensure_ascii=False, default=str, allow_nan=False)
        text.encode("utf-8")
        return text
    except (ValueError, UnicodeEncodeError, RecursionError):
        return json.dumps(json_safe(data), indent=indent, ensure_ascii=False, default=str, allow_nan=False)


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like value that strict JSON and UTF-8 accept (see `dumps_json`)."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # beyond Python's int-to-text limit (4300 digits) even json.dumps fails
        return value if value.bit_length() < 4000 else f"[integer of {value.bit_length()} bits: cut]"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return f"[nested deeper than {MAX_DEPTH} levels: cut]"
    if isinstance(value, dict):
        return {
            (utf8_text(k) if isinstance(k, str) else json_safe(k, depth + 1)): json_safe(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    return utf8_text(str(value))


def utf8_text(text: str) -> str:
    """`text` with surrogate pairs joined and lone surrogates replaced by U+FFFD: valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def write_json(path: Path, data: Any) -> None:
    write_text(path, dumps_json(data) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(
            f"{path} is missing", "run the task that writes it first (`trace2eval status` shows the plan)"
        ) from None
    except json.JSONDecodeError as exc:
        raise SessionError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})", "restore it or rerun the task that writes it"
        ) from None


def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


RUN_NOTES = "run_notes.json"  # in a session's state/: what a run did that a reviewer must hear of


def add_run_note(state_dir: Path, topic: str, text: str, **details: Any) -> None:
    """Record a note (shed rows, skipped traces, a clamped watermark): SUITE.md and the report show them.

    One note per topic: a task rerun replaces its note instead of repeating it.
    """
    notes = [n for n in run_notes(state_dir) if n.get("topic") != topic]
    write_json(Path(state_dir) / RUN_NOTES, notes + [{"topic": topic, "text": text, **details}])


def run_notes(state_dir: Path) -> list[dict[str, Any]]:
    path = Path(state_dir) / RUN_NOTES
    try:
        notes = read_json(path) if path.exists() else []
    except SessionError:
        return []  # a damaged notes file must not stop a publish
    if not isinstance(notes, list):
        return []
    # Notes written by earlier versions name their topic `kind` (a suite's Volume keeps them).
    return [
        {("topic" if k == "kind" and "topic" not in n else k): v for k, v in n.items()}
        for n in notes
        if isinstance(n, dict) and isinstance(n.get("text"), str)
    ]


def drop_run_note(state_dir: Path, topic: str) -> None:
    """Forget a note a rerun no longer stands by (e.g. a retried read that skipped nothing)."""
    path = Path(state_dir) / RUN_NOTES
    if path.exists():
        write_json(path, [n for n in run_notes(state_dir) if n.get("topic") != topic])
