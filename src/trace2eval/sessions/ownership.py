"""Never overwrite a file a person edited.

Every generated file's content hash is recorded in `state/generated_files.json` when trace2eval
writes it. Before writing a file again, the hash of what is on disk is compared with the record:

- the same (or no file): trace2eval still owns it and writes the new version;
- different: a person edited it. Their version stays; the new one is written beside it as
  `<name>.new` and the conflict is listed in the manifest until the person resolves it (merge
  and delete the `.new`, or move the `.new` over their file to take the generated version).

The recorded hash is always that of the latest *generated* version, so moving `<name>.new` over the
file hands it back to trace2eval, and an edited file stays the person's night after night.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from trace2eval.sessions.files import read_json, sha256, write_json, write_text
from trace2eval.sessions.plan import now

MANIFEST = "state/generated_files.json"
NEW_SUFFIX = ".new"


class FileRecord(BaseModel):
    sha256: str
    task: str | None = None
    written_at: str | None = None


class Conflict(BaseModel):
    file: str  # relative to the session (or suite) folder, e.g. evaluation/scorers.py
    new_version: str  # where the generated version was written instead
    task: str | None = None
    since: str | None = None
    reason: str = "edited since trace2eval generated it"


class Manifest(BaseModel):
    files: dict[str, FileRecord] = Field(default_factory=dict)
    conflicts: list[Conflict] = Field(default_factory=list)

    def conflict(self, rel: str) -> Conflict | None:
        return next((c for c in self.conflicts if c.file == rel), None)

    def set_conflict(self, conflict: Conflict) -> None:
        existing = self.conflict(conflict.file)
        if existing is not None:
            conflict.since = existing.since  # keep when it first happened
            self.conflicts.remove(existing)
        self.conflicts.append(conflict)

    def clear_conflict(self, rel: str) -> None:
        self.conflicts = [c for c in self.conflicts if c.file != rel]


class WriteOutcome(NamedTuple):
    written: Path  # the file that received the generated text
    kept_edit: bool  # True when a person's version was kept and `written` is the `.new` file


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.exists():
        return Manifest()
    return Manifest.model_validate(read_json(path))


def save_manifest(folder: Path, manifest: Manifest) -> None:
    write_json(Path(folder) / MANIFEST, manifest.model_dump(mode="json"))


def is_edited(folder: Path, rel: str, manifest: Manifest | None = None) -> bool:
    """True when `rel` exists and differs from the version trace2eval last generated."""
    manifest = manifest or load_manifest(folder)
    record = manifest.files.get(rel)
    current = sha256(Path(folder) / rel)
    return record is not None and current is not None and current != record.sha256


def write_generated(
    folder: Path, rel: str, text: str, task: str | None = None, *, merged: bool = False
) -> WriteOutcome:
    """Write a generated file unless a person edited the one on disk.

    `merged=True` says the text was built *from* the file's current content (dataset rows appended
    to the person's rows), so writing it keeps every edit and is not an overwrite.
    """
    folder = Path(folder)
    target = folder / rel
    new_copy = target.with_name(target.name + NEW_SUFFIX)
    manifest = load_manifest(folder)
    record = FileRecord(sha256=text_sha256(text), task=task, written_at=now())
    if not merged and is_edited(folder, rel, manifest):
        write_text(new_copy, text)
        manifest.files[rel] = record
        manifest.set_conflict(Conflict(file=rel, new_version=rel + NEW_SUFFIX, task=task, since=now()))
        save_manifest(folder, manifest)
        return WriteOutcome(new_copy, True)
    if sha256(target) != record.sha256:
        write_text(target, text)
    new_copy.unlink(missing_ok=True)  # an older `.new` is stale once trace2eval owns the file again
    manifest.files[rel] = record
    manifest.clear_conflict(rel)
    save_manifest(folder, manifest)
    return WriteOutcome(target, False)


def conflicts(folder: Path) -> list[dict[str, Any]]:
    """The unresolved conflicts: files a person edited whose generated version waits beside them."""
    return [c.model_dump(mode="json") for c in load_manifest(folder).conflicts]
