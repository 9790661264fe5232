"""Jinja2 rendering for generated files; `py` writes any value as a Python literal."""

from __future__ import annotations

import pprint
from functools import lru_cache
from typing import Any

import jinja2


def py_literal(value: Any) -> str:
    """A Python literal for JSON-like data (repr of str/int/float/bool/None/list/dict)."""
    return pprint.pformat(value, width=100, sort_dicts=False)


def docstring(text: str) -> str:
    """A safe triple-quoted docstring body: no quote runs or backslashes can end it early."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trace2eval.generate", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = py_literal
    env.filters["docstring"] = docstring
    return env


def render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)
