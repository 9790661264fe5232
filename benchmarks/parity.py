"""Does a refactoring change what trace2eval produces? The same traces through two versions, field for field.

Checks out BASE (a git revision) into a temporary worktree, runs the deterministic initializer
(read + digest + analysis) of BASE and of the working tree on the same tracking store, each in a
fresh process with its own sources first on the path, and compares the two `analysis.json` files
key by key. Keys a version renamed on purpose are mapped with --rename OLD=NEW (dotted paths
allowed: `findings.*.check=findings.*.id`); volatile keys (times, ids of the session) are ignored.

Prints every differing path with both values, and a summary line; exit 0 when nothing differs.

Usage:
  python ../shared/traces/load_traces.py --tracking-uri sqlite:///tau.db --experiment tau ../shared/traces/dev/*.json
  python benchmarks/parity.py --tracking-uri sqlite:///tau.db --experiment-id 1 --base e927e2d
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Written fresh by every run: they say when and where, not what was found.
VOLATILE = {"created_at", "generated_at", "session", "session_id", "read_seconds", "seconds", "elapsed_s", "duration_s"}


def initializer(src: Path, uri: str, experiment_id: str, out: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-m", "trace2eval", "task", "initializer", "--session", str(out)]
    cmd += ["--experiment-id", experiment_id, "--tracking-uri", uri]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out.parent)
    if proc.returncode != 0:
        raise SystemExit(f"initializer of {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "state" / "analysis.json").read_text())


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in VOLATILE:
                continue
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        out = {}
        for i, item in enumerate(value):
            # Findings and query types are keyed by their id/name so a reordering is not a difference.
            name = item.get("id") or item.get("check") or item.get("name") or str(i)
            out.update(flatten(item, f"{prefix}[{name}]"))
        return out
    return {prefix: value}


def renamed(path: str, renames: list[tuple[str, str]]) -> str:
    for old, new in renames:
        path = path.replace(old, new)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment-id", required=True)
    p.add_argument("--base", required=True, help="git revision to compare the working tree with")
    p.add_argument("--rename", action="append", default=[], help="OLD=NEW: a key BASE wrote as OLD is now NEW")
    args = p.parse_args(argv)
    renames = [tuple(r.split("=", 1)) for r in args.rename]

    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base_tree), args.base], check=True
        )
        try:
            old = initializer(base_tree / "src", args.tracking_uri, args.experiment_id, Path(tmp) / "old-session")
            new = initializer(REPO / "src", args.tracking_uri, args.experiment_id, Path(tmp) / "new-session")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)], check=False)

    old_flat = {renamed(k, renames): v for k, v in flatten(old).items()}
    new_flat = flatten(new)
    differ = 0
    for path in sorted(set(old_flat) | set(new_flat)):
        a, b = old_flat.get(path, "<absent>"), new_flat.get(path, "<absent>")
        if a != b:
            differ += 1
            print(f"{path}\n  {args.base}: {json.dumps(a)[:200]}\n  now: {json.dumps(b)[:200]}")
    same = len(set(old_flat) & set(new_flat)) - sum(
        1 for k in set(old_flat) & set(new_flat) if old_flat[k] != new_flat[k]
    )
    print(f"\n{same} fields equal, {differ} differ ({len(old_flat)} in {args.base}, {len(new_flat)} now)")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
