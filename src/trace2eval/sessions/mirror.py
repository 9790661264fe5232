"""The local copy of a Volume folder: `pull` downloads it, `push` uploads what changed since.

A session in a Volume is run from a laptop on such a copy (see `workdirs.py`); the copy records what
the Volume held at the last sync in `SYNC_STATE`, so `push` sends only new or changed files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trace2eval.sessions.files import sha256, write_bytes
from trace2eval.sessions.filesapi import SKIP_NAMES, SYNC_STATE, VolumeFolder

CACHE_ENV = "TRACE2EVAL_CACHE_DIR"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trace2eval"


def mirror_path(remote: str) -> Path:
    """Where the local copy of a Volume folder lives."""
    return cache_dir() / "volumes" / str(PurePosixPath(remote)).lstrip("/")


@dataclass
class Mirror:
    """A Volume folder and its local copy; `push` uploads only what changed since the last sync."""

    remote: VolumeFolder
    local: Path

    def _synced(self) -> dict[str, str]:
        try:
            return json.loads((self.local / SYNC_STATE).read_text())
        except (OSError, ValueError):
            return {}

    def _save_synced(self, hashes: dict[str, str]) -> None:
        write_bytes(self.local / SYNC_STATE, json.dumps(hashes, indent=1, sort_keys=True).encode())

    def pull(self) -> int:
        """Download every file of the remote folder (replacing the local copy). Returns the count."""
        files = self.remote.list_files()
        previous = self._synced()
        hashes: dict[str, str] = {}
        for rel in files:
            data = self.remote.read_bytes(rel)
            if data is None:
                continue  # removed while listing
            target = self.local / rel
            if sha256(target) != _bytes_sha(data):
                write_bytes(target, data)
            hashes[rel] = _bytes_sha(data)
        for rel in self._local_files():
            if rel not in hashes and rel in previous:
                (self.local / rel).unlink(missing_ok=True)  # deleted in the Volume since the last sync
        self._save_synced(hashes)
        return len(hashes)

    def push(self) -> int:
        """Upload local files that are new or changed since the last sync. Returns the count."""
        synced = self._synced()
        uploaded = 0
        for rel in self._local_files():
            digest = sha256(self.local / rel)
            if digest is None or synced.get(rel) == digest:
                continue
            self.remote.write_bytes(rel, (self.local / rel).read_bytes())
            synced[rel] = digest
            uploaded += 1
        for rel in [r for r in synced if not (self.local / r).exists()]:
            self.remote.delete(rel)  # deleted locally (e.g. a stale `.new` the task removed)
            synced.pop(rel)
        self._save_synced(synced)
        return uploaded

    def _local_files(self) -> list[str]:
        if not self.local.is_dir():
            return []
        out = []
        for path in sorted(self.local.rglob("*")):
            rel = path.relative_to(self.local)
            if path.is_file() and not any(part in SKIP_NAMES for part in rel.parts) and not path.name.endswith(".tmp"):
                out.append(rel.as_posix())
        return out


def _bytes_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
