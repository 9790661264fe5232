"""The package's import graph: no cycles, and the layers point one way.

Every `import` in every module counts, function-level ones included (a cycle hidden behind an
import inside a function is still a cycle: it only fails later, and in whichever order the modules
happen to load). Only imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import trace2eval

PACKAGE = "trace2eval"
ROOT = Path(trace2eval.__file__).parent

# Edges the graph is allowed to have even though they close a cycle: (importer, imported) -> why.
# Keep this empty; an entry needs a reason a reader accepts.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the tree, except the bodies of `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `node` (in module `name`) loads."""
    if isinstance(node, ast.Import):
        bases = [alias.name for alias in node.names]
        return {_nearest(b, modules) for b in bases} - {None}
    if node.level:  # relative: from the importing module's package
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base != PACKAGE and not base.startswith(PACKAGE + "."):
        return set()
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.add(sub if sub in modules else _nearest(base, modules))  # a submodule, or a name in `base`
    return found - {None}


def _nearest(dotted: str, modules: dict[str, Path]) -> str | None:
    """The module `import dotted` ends up in: itself, or the closest package of it that exists."""
    if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
        return None
    parts = dotted.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(name, path, node, modules):
                if target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    inside = set(members)
    start = members[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return members


def test_the_resolver_sees_function_level_and_relative_imports():
    # A guard for the test itself: if it resolved nothing, "no cycle" would prove nothing.
    graph = import_graph()
    assert len(graph) > 50
    assert "trace2eval.sessions.session" in graph["trace2eval.sessions.runner"]
    assert "trace2eval.report.publish" in graph["trace2eval.sessions.runner"]  # imported inside a function
    source = "def f():\n    from .b import x\n    from . import c\nif TYPE_CHECKING:\n    import trace2eval.d\n"
    modules = {
        "trace2eval.p.a": ROOT / "p" / "a.py",
        "trace2eval.p.b": ROOT / "p" / "b.py",
        "trace2eval.p.c": ROOT / "p" / "c.py",
        "trace2eval.p": ROOT / "p" / "__init__.py",
        "trace2eval.d": ROOT / "d.py",
    }
    targets = set()
    for node in _imports(ast.parse(source)):
        targets |= _targets("trace2eval.p.a", modules["trace2eval.p.a"], node, modules)
    assert targets == {"trace2eval.p.b", "trace2eval.p.c"}


def test_no_import_cycles():
    graph = import_graph()
    edges = {m: set(targets) - {t for (f, t) in ALLOWED if f == m} for m, targets in graph.items()}
    cycles = []
    for members in _components(edges):
        cycle = _shortest_cycle(edges, members)
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
        cycles.append(f"{len(members)} modules in a cycle, e.g.:\n    " + "\n    ".join(steps))
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_allowed_exceptions_are_still_needed():
    graph = import_graph()
    for (importer, imported), why in ALLOWED.items():
        assert why.strip(), f"{importer} -> {imported} needs a reason"
        assert imported in graph.get(importer, {}), f"{importer} no longer imports {imported}: drop it from ALLOWED"


def test_tasks_and_the_llm_layer_do_not_import_each_other():
    graph = import_graph()
    tasks, llm = f"{PACKAGE}.sessions.tasks", f"{PACKAGE}.llm"
    wrong = []
    for module, targets in graph.items():
        for target, line in targets.items():
            if (module == tasks or module.startswith(tasks + ".")) and (target == llm or target.startswith(llm + ".")):
                wrong.append(f"{module} (line {line}) imports {target}: the runner runs the LLM step, not the task")
            if module.startswith(llm + ".") or module == llm:
                if target == tasks or target.startswith(tasks + "."):
                    wrong.append(
                        f"{module} (line {line}) imports {target}: use trace2eval.state, or a callable "
                        "the runner hands over"
                    )
    assert not wrong, "\n".join(wrong)
