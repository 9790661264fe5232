"""Copy a session and its store so a test can change both freely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from trace2eval.sessions.session import Session


def copy_session(session: Session, store_folder: Path, into: Path, name: str | None = None) -> Session:
    """Copy a session and its sqlite store; the copy's config points at the copied store."""
    into.mkdir(parents=True, exist_ok=True)
    db = into / "mlflow.db"
    if not db.exists():
        shutil.copy(store_folder / "mlflow.db", db)
    target = into / "sessions" / (name or session.id)
    shutil.copytree(session.dir, target, ignore=shutil.ignore_patterns(".*"))
    config = json.loads((target / "state" / "config.json").read_text())
    config["tracking_uri"] = f"sqlite:///{db}"
    (target / "state" / "config.json").write_text(json.dumps(config))
    return Session(target.resolve())
