"""Jinja2 rendering for generated files.

Trace-derived text reaches generated code only through the filters here, and each filter is the
last step applied to it: `py` writes a Python literal (`repr`), `docstring` and `comment` wrap the
raw text first and escape it after, so no later text operation can undo the escaping (a `wordwrap`
after escaping once split an escaped triple quote back into a real one). The templates apply no other
filter to such text; a test renders them with hostile text and compares the code's AST.
"""

from __future__ import annotations

import pprint
import textwrap
from functools import lru_cache
from typing import Any

import jinja2

WRAP = 92


def py_literal(value: Any) -> str:
    """A Python literal for JSON-like data (repr of str/int/float/bool/None/list/dict)."""
    return pprint.pformat(value, width=100, sort_dicts=False)


def _escape(text: str) -> str:
    """Text safe inside a `\"\"\"` literal or after `#`: no quote, backslash or line break survives.

    Every double quote is escaped (so no run of three can form), backslashes are doubled, and any
    character that is not printable (line and paragraph separators, NUL, ESC, bidi overrides,
    lone surrogates) becomes a `\\x`/`\\u` escape: readable, and never a line end to the tokenizer.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _wrapped(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        lines.extend(textwrap.wrap(paragraph, width, break_long_words=True, break_on_hyphens=False) or [""])
    return lines


def docstring(text: str, indent: str = "    ", width: int = WRAP) -> str:
    """The body of a triple-quoted docstring: wrapped, then escaped line by line."""
    return ("\n" + indent).join(_escape(line) for line in _wrapped(text, width)).rstrip()


def comment(text: str, indent: str = "    ", width: int = WRAP) -> str:
    """A `# ...` comment block (the template writes the first `# `): wrapped, then escaped."""
    lines = _wrapped(" ".join(str(text).split("\n")), width)
    return ("\n" + indent + "# ").join(_escape(line) for line in lines)


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
    env.filters["comment"] = comment
    return env


def render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)
