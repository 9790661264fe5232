"""Progress and messages on stderr: bars on a terminal, plain lines in logs, silence with --quiet.

stdout is reserved for results (the session folder is its last line), so everything here goes to
stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from trace2eval.printable import printable

T = TypeVar("T")

_quiet = os.environ.get("TRACE2EVAL_QUIET", "") not in ("", "0", "false")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def say(message: str) -> None:
    if not _quiet:
        print(printable(message), file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Warnings print even under --quiet: they change what the user should trust."""
    print(printable(f"Warning: {message}"), file=sys.stderr, flush=True)


def _interactive() -> bool:
    return sys.stderr.isatty() and not _quiet


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "traces") -> Iterator[T]:
    """Iterate with a progress bar (terminal) or a line every ~10 s (logs)."""
    if _quiet:
        yield from items
        return
    if _interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        ]
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


class Counter:
    """A progress handle for work counted by someone else (e.g. a child process's rows)."""

    def __init__(self, description: str, unit: str, bar=None, task=None):
        self.description, self.unit = description, unit
        self.done, self.total = 0, None
        self._bar, self._task = bar, task
        self._start = self._last = time.monotonic()

    def update(self, done: int, total: int | None = None) -> None:
        self.done, self.total = done, total if total is not None else self.total
        now = time.monotonic()
        rate = f"{done / max(now - self._start, 1e-6):,.1f} {self.unit}/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total, rate=rate)
        elif not _quiet and now - self._last >= 10:
            say(f"{self.description}: {done}{f'/{self.total}' if self.total else ''} {self.unit} ({rate})")
            self._last = now


@contextmanager
def activity(description: str, unit: str = "rows") -> Iterator[Counter]:
    """Show work in progress: a bar once counts arrive (a spinner before), a line every ~10 s in
    logs, nothing under --quiet; the elapsed time is reported at the end."""
    start = time.monotonic()
    if _interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, transient=True, console=_console()) as progress:
            counter = Counter(description, unit, progress, progress.add_task(description, total=None, rate=""))
            yield counter
    else:
        say(f"{description} …")
        counter = Counter(description, unit)
        yield counter
    counted = f"{counter.done} {unit} " if counter.done else ""
    say(f"{description}: {counted}done in {time.monotonic() - start:.1f} s")


def _console():
    from rich.console import Console

    return Console(stderr=True)
