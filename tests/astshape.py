"""The shape of generated code: its AST with every string constant blanked (what it does, not what
it says). Two renderings with the same shape differ only in text carried as data."""

from __future__ import annotations

import ast


def shape(code: str) -> str:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree, include_attributes=False)
