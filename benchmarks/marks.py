"""The per-turn result marks (`_Marks` in traces/features.py): size, false matches and time.

Each turn of a conversation traced once per turn keeps a Bloom filter of the words its tools
returned, so a later turn's write can be judged against them. This prints, for tool outputs of
growing size: the distinct entries marked, the bits set, the share of random absent values read
as returned (a false match makes a write look grounded, never ungrounded), and the time to mark.

    python benchmarks/marks.py
"""

from __future__ import annotations

import base64
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trace2eval.traces.features import _Marks  # noqa: E402


def tool_output(rows: int, rng: random.Random) -> str:
    """A search-like tool result: ids, prices, dates, words."""
    return json.dumps(
        [
            {
                "flight": f"HAT{rng.randrange(10_000):04d}",
                "price": rng.randrange(50, 2_000),
                "date": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                "cabin": rng.choice(["economy", "business", "basic_economy"]),
                "seats": rng.randrange(0, 9),
            }
            for _ in range(rows)
        ]
    )


def main() -> None:
    rng = random.Random(0)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"marks: {_Marks.BITS} bits, {len(base64.b64encode(bytes(_Marks.BITS // 8)))} characters encoded")
    print(f"{'rows':>6} {'chars':>8} {'entries':>8} {'bits set':>9} {'false match':>12} {'ms':>7}")
    for rows in (1, 10, 50, 100, 300, 1_000):
        text = tool_output(rows, rng)
        marks = _Marks()
        start = time.perf_counter()
        marks.add(text)
        ms = (time.perf_counter() - start) * 1000
        bits = _Marks.decode(marks.encoded())
        absent = [_Marks.tokens(f"ZQ{rng.randrange(10**9)}X") for _ in range(5_000)]
        false = sum(_Marks.holds(bits, t) for t in absent)
        entries = len(_Marks.tokens(text, limit=None))
        print(
            f"{rows:>6} {len(text):>8} {entries:>8} {bin(bits).count('1'):>9} "
            f"{false / len(absent):>6.1%} ({false}/{len(absent)}) {ms:>6.1f}"
        )


if __name__ == "__main__":
    main()
