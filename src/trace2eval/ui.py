"""Progress and messages on stderr: bars on a terminal, plain lines in logs, silence with --quiet.

stdout is reserved for results (the session folder is its last line), so everything here goes to
stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_quiet = os.environ.get("TRACE2EVAL_QUIET", "") not in ("", "0", "false")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def say(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Warnings print even under --quiet: they change what the user should trust."""
    print(f"Warning: {message}", file=sys.stderr, flush=True)


def _interactive() -> bool:
    return sys.stderr.isatty() and not _quiet


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "traces") -> Iterator[T]:
    """Iterate with a progress bar (terminal) or a line every ~10 s (logs)."""
    if _quiet:
        yield from items
        return
    if _interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
        start = time.monotonic()
        with Progress(*columns, transient=True, console=_console()) as progress:
            task = progress.add_task(description, total=total, rate="")
            for n, item in enumerate(items, 1):
                yield item
                elapsed = max(time.monotonic() - start, 1e-6)
                progress.update(task, advance=1, rate=f"{n / elapsed:,.0f} {unit}/s")
        say(f"{description}: {n if 'n' in locals() else 0} {unit} in {time.monotonic() - start:.1f} s")
        return
    start = last = time.monotonic()
    n = 0
    for n, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= 10:
            say(f"{description}: {n}{f'/{total}' if total else ''} {unit} ({n / (now - start):,.0f}/s)")
            last = now
    say(f"{description}: {n} {unit} in {time.monotonic() - start:.1f} s")


def _console():
    from rich.console import Console

    return Console(stderr=True)
