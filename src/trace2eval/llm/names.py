"""Names an LLM session may give a scorer: rendered as function names in scorers.py.

Scorer code itself is never taken from a model: checks are proposed as data (generate/rules.py).
An allow-list review of Python source was tried before and escaped a dozen ways (dunder names
built by concatenation, modules reachable through allowed ones); it is gone, not patched.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from functools import lru_cache
from pathlib import Path

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{2,48}$")


@lru_cache(maxsize=1)
def reserved_names() -> frozenset[str]:
    """Names a custom scorer must not take: the rendered scorers.py defines them (the copied
    feature/check helpers and the template's own), or Python does."""
    names = {
        "JUDGE_MODEL",
        "get_code_scorers",
        "get_judge_scorers",
        "get_all_scorers",
        "Feedback",
        "scorer",
        "annotations",
        "os",
    }
    traces = Path(__file__).parents[1] / "traces"
    for module in ("layouts.py", "features.py", "checks.py"):
        tree = ast.parse((traces / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    names.update(dir(builtins))
    names.update(keyword.kwlist)
    return frozenset(names)


def check_name(name: str, taken: set[str]) -> list[str]:
    """Reasons a scorer name cannot be used (empty when it can)."""
    if not NAME_PATTERN.match(name or ""):
        return [f"name {name!r} must be snake_case: a lowercase letter, then 2-48 of a-z, 0-9, _"]
    if name in reserved_names():
        return [f"name {name!r} is already defined in scorers.py (a trace2eval helper or a Python builtin)"]
    if name in taken:
        return [f"a scorer named {name!r} already exists (metrics with the same name are silently merged)"]
    return []
