"""What a test needs from the machine: skip locally when it is missing, fail in CI.

CI (`.ci/run`, with CI set) installs and provides everything the tests need, so a missing piece
there is a broken setup, not a reason to pass without testing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, how: str) -> NoReturn:
    """`what` is not available here; `how` says how to provide it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}, but CI is set: {how}")
    pytest.skip(f"{what} ({how}); CI runs this test")
