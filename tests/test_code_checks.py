"""The linter, the formatter and the type checker, run as tests so CI (which runs pytest) runs them too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from environment import missing

REPO = Path(__file__).parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        missing(f"{name} is not installed", "pip install -r requirements-dev.txt")
    return found


def test_ruff_finds_nothing():
    proc = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "src", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_code_is_formatted():
    proc = subprocess.run(
        [_tool("ruff"), "format", "--check", "--no-cache", "src", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, "run `ruff format src tests benchmarks`:\n" + proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_mypy_on_the_typed_core(tmp_path):
    proc = subprocess.run(
        [_tool("mypy"), "--cache-dir", str(tmp_path / "mypy")], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
