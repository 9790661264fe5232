"""Make untrusted text safe to show: control and invisible formatting characters become visible escapes.

Trace text can carry terminal escape sequences (ESC), NULs, bidirectional overrides (U+202E turns
`exe.txt` into what reads as `txt.exe`), zero-width characters and lone surrogates. None of them
may reach a report, SUITE.md or the terminal as they are: each is replaced by its Python-style
escape (`\\x1b`, `\\u202e`), so a reader sees that it was there and what it was.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls (ESC, NUL, DEL, ...); Cf: format characters (bidi overrides and isolates,
# zero-width space/joiners, BOM, soft hyphen); Cs: lone surrogates (not encodable as UTF-8);
# Zl/Zp: line and paragraph separators, which some renderers treat as line breaks.
_HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, keep: str = "\n\t") -> str:
    """`text` with every control/format character but those in `keep` shown as an escape."""
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(ch if ch in keep or unicodedata.category(ch) not in _HIDDEN else _escape(ch) for ch in text)
