"""Small helpers for distributions taken from the experiment itself, and an order that does not
depend on how the store returned it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), 2),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


def outlier_threshold(values: Sequence[float], q: float = 95.0, floor_factor: float = 2.0) -> float:
    """A limit above which a value is unusual for this experiment.

    The q-th percentile, but never below `floor_factor` × median, so a tight distribution does
    not turn ordinary variation into findings.
    """
    if not values:
        return 0.0
    return max(percentile(values, q), floor_factor * percentile(values, 50))


def content_order(items: Sequence[T], text: Callable[[T], str]) -> list[T]:
    """`items` in an order set by their content, not by how they arrived: by a hash of `text(item)`,
    ties by the text itself. A store returns traces with equal timestamps in any order and gives a
    trace a new id each time it is logged; whatever is seeded or clustered after this gives the same
    result for the same traces."""

    def key(item: T) -> tuple[str, str]:
        content = text(item)
        return hashlib.sha1(content.encode("utf-8", "replace")).hexdigest(), content

    return sorted(items, key=key)


def conversation_text(row: dict[str, Any]) -> str:
    """What a trace's digest keeps across loads of the same conversation: its request and answer."""
    return f"{row.get('request') or ''}\x1f{row.get('answer') or ''}"
