"""Atomic file writes and reads for session state.

Every write goes to a temporary file in the same folder and is renamed over the target, so a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from trace2eval.errors import SessionError

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


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


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{path} is missing", "run the task that writes it first (`trace2eval status` shows the plan)") from None
    except json.JSONDecodeError as exc:
        raise SessionError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})", "restore it or rerun the task that writes it") from None


def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
