"""Review of scorer code an LLM wrote, before it is run anywhere.

The code is parsed, never imported, and refused when it could reach outside a pure function of
its arguments: imports off the allow-list, exec/eval/compile/open and friends, os/sys/subprocess/
sockets, dunder attributes or frame introspection, top-level statements that run at import.
What passes is then run on sample rows in a subprocess with a timeout (`samplerun`), and only
then rendered into scorers.py.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from functools import lru_cache
from pathlib import Path

MAX_CODE_CHARS = 8_000
MAX_CODE_LINES = 200
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{2,48}$")
SCORER_PARAMS = {"inputs", "outputs", "expectations", "trace"}

# Modules a scorer may import (pure computation on its arguments).
ALLOWED_MODULES = {
    "re", "json", "math", "statistics", "collections", "itertools", "functools", "datetime", "string",
    "difflib", "unicodedata", "typing", "decimal", "fractions", "textwrap", "operator", "enum",
}
# `from X import Y` only (never `import mlflow...`, which would bind the whole `mlflow` package).
ALLOWED_FROM = {
    "mlflow.entities": {"Feedback", "AssessmentSource", "SpanType"},
    "mlflow.genai.scorers": {"scorer"},
}
FORBIDDEN_NAMES = {
    "exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "input", "breakpoint",
    "help", "exit", "quit", "setattr", "delattr", "memoryview",
    # modules that scorers.py itself imports or that could be reached by name
    "os", "sys", "subprocess", "socket", "shutil", "pathlib", "importlib", "builtins", "ctypes", "pickle",
    "marshal", "signal", "threading", "multiprocessing", "urllib", "http", "requests", "httpx", "mlflow",
}
FORBIDDEN_ATTRS = {
    "format", "format_map",  # "{0.__class__}".format(x) reaches dunders through a string
    "gi_frame", "gi_code", "cr_frame", "ag_frame", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "tb_frame", "tb_next", "co_code", "func_globals", "system", "popen", "unlink", "rmtree", "write_text",
    "write_bytes",
}


@lru_cache(maxsize=1)
def reserved_names() -> frozenset[str]:
    """Names a custom scorer must not take: the rendered scorers.py defines them (the copied
    feature/check helpers and the template's own), or Python does."""
    names = {"JUDGE_MODEL", "get_code_scorers", "get_judge_scorers", "get_all_scorers", "Feedback", "scorer",
             "annotations", "os"}
    traces = Path(__file__).parents[1] / "traces"
    for module in ("features.py", "checks.py"):
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


def _decorator_ok(dec: ast.expr, name: str) -> bool:
    if isinstance(dec, ast.Name):
        return dec.id == "scorer"
    if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "scorer":
        if dec.args:
            return False
        for kw in dec.keywords:
            if kw.arg == "name" and not (isinstance(kw.value, ast.Constant) and kw.value.value == name):
                return False
            if kw.arg not in ("name", "description"):
                return False
        return True
    return False


def review(code: str, name: str) -> list[str]:
    """Reasons to refuse `code` as the custom scorer `name` (empty when it passes review)."""
    if not isinstance(code, str) or not code.strip():
        return ["code is empty"]
    if len(code) > MAX_CODE_CHARS or code.count("\n") > MAX_CODE_LINES:
        return [f"code is too long (at most {MAX_CODE_CHARS} characters and {MAX_CODE_LINES} lines)"]
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"syntax error at line {exc.lineno}: {exc.msg}"]
    problems: list[str] = []
    top = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if len(top) != 1 or not isinstance(top[0], ast.FunctionDef):
        problems.append("the code must be exactly one top-level function (helpers go inside it); "
                        f"found {', '.join(type(n).__name__ for n in top) or 'nothing'}")
    else:
        fn = top[0]
        if fn.name != name:
            problems.append(f"the function is named {fn.name!r} but the scorer is {name!r}: use the same name")
        if len(fn.decorator_list) != 1 or not _decorator_ok(fn.decorator_list[0], name):
            problems.append(f"decorate the function with exactly @scorer (or @scorer(name={name!r}))")
        args = fn.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        if args.vararg or args.kwarg:
            problems.append("no *args/**kwargs: take only inputs, outputs, expectations, trace")
        unknown = [p for p in params if p not in SCORER_PARAMS]
        if unknown or not params:
            problems.append(f"parameters must be a non-empty subset of inputs, outputs, expectations, trace "
                            f"(got {', '.join(params) or 'none'})")
        if args.defaults or args.kw_defaults and any(d is not None for d in args.kw_defaults):
            problems.append("no default values on scorer parameters (MLflow passes them)")
        if isinstance(fn, ast.AsyncFunctionDef):
            problems.append("the scorer must not be async")
    problems.extend(_walk(tree))
    return list(dict.fromkeys(problems))  # unique, in order


def _walk(tree: ast.AST) -> list[str]:
    problems: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_MODULES:
                    problems.append(f"line {line}: import {alias.name} is not allowed "
                                    f"(allowed: {', '.join(sorted(ALLOWED_MODULES))})")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                problems.append(f"line {line}: relative imports are not allowed")
            elif module in ALLOWED_FROM:
                bad = [a.name for a in node.names if a.name not in ALLOWED_FROM[module]]
                if bad:
                    problems.append(f"line {line}: from {module} import {', '.join(bad)} is not allowed")
            elif module not in ALLOWED_MODULES:
                problems.append(f"line {line}: import from {module} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES or node.id.startswith("__"):
                problems.append(f"line {line}: {node.id} is not allowed in a scorer")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") or node.attr in FORBIDDEN_ATTRS:
                problems.append(f"line {line}: attribute .{node.attr} is not allowed in a scorer")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            problems.append(f"line {line}: global/nonlocal is not allowed (a scorer must not change module state)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            problems.append(f"line {line}: strings containing '__' are not allowed (they can name dunder attributes)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            target = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(target, ast.Constant) and isinstance(target.value, str) and not target.value.startswith("_")):
                problems.append(f"line {line}: getattr needs a constant, public attribute name")
        elif isinstance(node, (ast.ClassDef, ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom)):
            problems.append(f"line {line}: {type(node).__name__} is not allowed in a scorer")
    return problems
