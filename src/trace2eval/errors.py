"""Domain errors. The CLI prints them as `Error: <what> — <how to fix>` and exits 1, no traceback."""

from __future__ import annotations


class Trace2EvalError(Exception):
    """An expected failure a user can act on."""

    def __init__(self, what: str, fix: str | None = None):
        from trace2eval.traces.redact import redact_text

        # Messages quote URIs and payloads; they are printed and kept in state files.
        what, fix = redact_text(str(what)), (redact_text(str(fix)) if fix is not None else None)
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.what} — {self.fix}" if self.fix else self.what


class SourceError(Trace2EvalError):
    """The tracking store or experiment cannot be read, or holds nothing usable."""


class SessionError(Trace2EvalError):
    """A session folder is missing, locked, corrupt, or a task was asked for out of order."""


class ValidationFailed(Trace2EvalError):
    """The generated suite did not pass validation."""


class LLMUnavailable(Trace2EvalError):
    """The configured LLM could not be reached or misbehaved beyond the retry budget."""
