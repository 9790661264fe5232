"""Versions of the state files, checked once on load, with the upgrade from every earlier one.

A nightly suite's state lives for months in a user's Volume: a newer trace2eval must read what an
older one wrote (upgraded here, in one place), and an older trace2eval must refuse, clearly, what
a newer one wrote instead of misreading it.

- analysis.json `schema_version` 2: findings name their check by the finding's own name (1 used
  separate check names, still accepted as aliases); `recommended_scorers` (written, never read)
  is gone. `guards` (failure checks no trace failed) came later within version 2: a file without
  them has none.
- scorer_specs.json `version` 2: code specs name checks as in analysis.json 2.
- scorer_specs.json `version` 3: a spec's (and a dropped scorer's) `kind` is called `implementation`.
"""

from __future__ import annotations

from typing import Any

from trace2eval.errors import SessionError
from trace2eval.traces.checks import CANONICAL

ANALYSIS_VERSION = 2
SPECS_VERSION = 3


def _version(data: dict[str, Any], key: str, current: int, what: str) -> int:
    version = data.get(key, 1)
    if not isinstance(version, int) or version < 1:
        raise SessionError(
            f"{what} has an unreadable {key} ({version!r})", "restore the file or rerun the task that writes it"
        )
    if version > current:
        raise SessionError(
            f"{what} was written by a newer trace2eval ({key} {version}; this one reads up to {current})",
            "upgrade trace2eval (pip install -U trace2eval) where this task runs",
        )
    return version


def _canonical(check: Any) -> Any:
    return CANONICAL.get(check, check) if isinstance(check, str) else check


def upgrade_analysis(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SessionError("analysis.json is not an object", "rerun the initializer")
    if _version(data, "schema_version", ANALYSIS_VERSION, "analysis.json") < 2:
        data = {k: v for k, v in data.items() if k != "recommended_scorers"}
        data["findings"] = [
            {**f, "check": _canonical(f.get("check"))} for f in data.get("findings", []) if isinstance(f, dict)
        ]
        data["schema_version"] = 2
    if "guards" not in data:
        data = {**data, "guards": []}
    return data


def upgrade_specs(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("scorers"), list):
        raise SessionError(
            'scorer_specs.json must be an object with a "scorers" list', "restore it, or rerun the scorers task"
        )
    version = _version(data, "version", SPECS_VERSION, "scorer_specs.json")
    if version < 2:
        data = {
            **data,
            "scorers": [
                {**s, "check": _canonical(s.get("check"))} if s.get("kind") == "code" else s
                for s in data["scorers"]
                if isinstance(s, dict)
            ],
        }
    if version < 3:
        data = {
            **data,
            "scorers": [_renamed(s, "kind", "implementation") for s in data["scorers"] if isinstance(s, dict)],
            "dropped": [_renamed(d, "kind", "implementation") for d in data.get("dropped", []) if isinstance(d, dict)],
        }
    return {**data, "version": SPECS_VERSION}


def _renamed(record: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {(new if k == old else k): v for k, v in record.items()}
