"""Token, turn and time budgets for one LLM session, and the usage it accumulated."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4  # rough size of English/JSON text in Claude tokens; for estimates only


def estimate_tokens(chars: int) -> int:
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass
class Usage:
    """What a session sent and received. Token counts come from the API's `usage` fields."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    chars_sent: int = 0  # JSON characters of every request body (system + messages + tools)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    def add_response(self, usage: Any) -> None:
        """Add a Messages API `usage` object (or dict); missing fields count as 0."""

        def get(name: str) -> int:
            value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
            return int(value or 0)

        self.input_tokens += get("input_tokens")
        self.output_tokens += get("output_tokens")
        self.cache_read_input_tokens += get("cache_read_input_tokens")
        self.cache_creation_input_tokens += get("cache_creation_input_tokens")

    def to_dict(self) -> dict[str, int]:
        return {
            **asdict(self),
            "total_tokens": self.total_tokens,
            "estimated_tokens_sent": estimate_tokens(self.chars_sent),
        }


@dataclass
class Budget:
    """Limits of one session. `run_tokens_left` is what earlier sessions of the run left over."""

    max_turns: int
    max_tokens: int
    seconds: float
    run_tokens_left: int
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def stop_reason(self, turns: int, usage: Usage, next_request_chars: int) -> str | None:
        """Why the next request must not be sent, or None. Checked before every request, so a
        session never starts a request it cannot afford."""
        if turns >= self.max_turns:
            return f"turn budget reached ({self.max_turns} turns)"
        upcoming = usage.total_tokens + estimate_tokens(next_request_chars)
        if upcoming > self.max_tokens:
            return f"session token budget reached ({usage.total_tokens:,} used of {self.max_tokens:,})"
        if upcoming > self.run_tokens_left:
            return f"run token budget reached ({self.run_tokens_left:,} tokens were left for this session)"
        if self.seconds_left() < 1:
            return f"session time budget reached ({self.seconds:.0f} s)"
        return None
