"""Run the Python blocks of one skill file in order, in one namespace; report the failing block.

Used by test_skills.py in a subprocess (fresh MLflow state, its own tracking store):
    python skillrun.py FILE.md
Exit 0 when every block ran; otherwise prints `BLOCK <n> (line <l>) FAILED` and the traceback.
"""

from __future__ import annotations

import re
import sys
import traceback

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    namespace: dict = {"__name__": "__skill__"}
    found = blocks(text)
    for n, (line, code) in enumerate(found, 1):
        try:
            exec(compile(code, f"{path}:block{n}@line{line}", "exec"), namespace)
        except BaseException:
            print(f"BLOCK {n} (line {line}) FAILED", flush=True)
            traceback.print_exc(file=sys.stdout)
            return 1
    print(f"OK {len(found)} blocks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
