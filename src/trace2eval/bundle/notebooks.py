"""Databricks notebook source files: read their cells, check them, and turn them into nbformat.

A source notebook starts with `# Databricks notebook source`; cells are separated by
`# COMMAND ----------`; markdown and magic cells are lines prefixed with `# MAGIC`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

HEADER = "# Databricks notebook source"
CELL_SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"


@dataclass(frozen=True)
class Cell:
    kind: str  # "code" | "markdown" | "magic"
    source: str


def parse(path: str | Path) -> list[Cell]:
    """The cells of a source notebook; ValueError when it is not one."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ValueError(f"{path} does not start with {HEADER!r}")
    cells: list[Cell] = []
    for chunk in "\n".join(lines[1:]).split(CELL_SEPARATOR):
        body = chunk.strip("\n")
        if not body.strip():
            continue
        chunk_lines = body.splitlines()
        if all(line.startswith(MAGIC) for line in chunk_lines if line.strip()):
            content = "\n".join(line[len(MAGIC) :].removeprefix(" ") for line in chunk_lines)
            kind = "markdown" if content.lstrip().startswith("%md") else "magic"
            if kind == "markdown":
                content = content.lstrip()[3:].lstrip("\n")
            cells.append(Cell(kind, content))
        else:
            cells.append(Cell("code", body))
    return cells


def code_cells(path: str | Path) -> list[str]:
    return [c.source for c in parse(path) if c.kind == "code"]


def to_notebook(path: str | Path):
    """The notebook as nbformat 4 (how the workspace shows it), validated against nbformat's schema."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = []
    for cell in parse(path):
        if cell.kind == "markdown":
            cells.append(new_markdown_cell(cell.source))
        elif cell.kind == "code":
            cells.append(new_code_cell(cell.source))
        else:
            cells.append(new_code_cell(cell.source))  # magics (%pip, %sql) are code cells in .ipynb
    notebook = new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})
    nbformat.validate(notebook)
    return notebook


def thinness_problems(path: str | Path) -> list[str]:
    """Why a notebook holds logic it should not: notebooks only read widgets, call the library and
    publish task values. Allowed: imports, assignments, calls, comprehensions, and one `for` loop
    whose body only sets task values."""
    problems: list[str] = []
    loops = 0
    for i, source in enumerate(code_cells(path), start=1):
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            return [f"cell {i}: syntax error: {exc.msg} (line {exc.lineno})"]
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                problems.append(f"cell {i}: defines {type(node).__name__} (put it in the library)")
            elif isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Try, ast.With, ast.Match)):
                problems.append(f"cell {i}: has control flow {type(node).__name__} (put it in the library)")
            elif isinstance(node, ast.For):
                loops += 1
                body = ast.unparse(node.body[0]) if len(node.body) == 1 else ""
                if "dbutils.jobs.taskValues.set" not in body:
                    problems.append(f"cell {i}: a for loop that does more than publish task values")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or node.names[0].name
                if not module.startswith("trace2eval"):
                    problems.append(f"cell {i}: imports {module} (notebooks only call trace2eval)")
    if loops > 1:
        problems.append(f"{loops} loops (one, to publish task values, is enough)")
    return problems
