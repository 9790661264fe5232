"""Every shell command the README shows runs as written, in a fresh copy of the repository.

The commands are taken from the README's ```bash / ```console / ```sh blocks. A command runs unless
one of its steps starts with (or contains) something listed in NEEDS: so a new offline command in
the README is tested by default, and one that needs a workspace, the network or a key has to be
listed here with the reason. Steps that build the environment (SETUP) are what the test machine
already did: the copy gets a `.venv` that is the environment running these tests.

Blocks run in README order in the same folder, each as one bash script (so `cd` and variables carry
over within a block, as when a person pastes it), with the environment active as the README says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from environment import missing

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# A step that needs what a test machine does not have: (text the step starts with or contains, why).
NEEDS = [
    ("databricks bundle", "a Databricks workspace and the Databricks CLI"),
    ("--tracking-uri databricks", "a Databricks workspace"),
    ("--llm anthropic", "an Anthropic API key and the network"),
    ("-m pytest", "the test suite itself, which this test is part of"),
]
# Steps that build the environment: the test runs in one already built (the copy's `.venv` is it).
SETUP = [
    ("python3.11 -m venv .venv", "the environment running these tests stands in for the new venv"),
    (".venv/bin/pip install", "installing needs the package index; the code under test is installed already"),
]
# A command whose documented exit code is not 0: (text it contains, exit code).
EXPECTED_EXIT: list[tuple[str, int]] = []
SHELL_BLOCKS = ("bash", "console", "sh", "shell")


@dataclass
class Block:
    line: int  # where it starts in the README
    commands: list[str]  # as they will run (setup steps removed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (command, why)


def _matches(step: str, rule: str) -> bool:
    return step.startswith(rule) or f" {rule}" in f" {step}"


def commands_of(text: str) -> list[str]:
    """One entry per command: continuation lines joined, blank lines and comments dropped."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        out.append((pending + line.strip()).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def readme_blocks() -> list[Block]:
    blocks = []
    text = README.read_text(encoding="utf-8")
    for match in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        if match.group(1) not in SHELL_BLOCKS:
            continue
        block = Block(line=text[: match.start()].count("\n") + 1, commands=[])
        for command in commands_of(match.group(2)):
            steps = [s.strip() for s in command.split("&&")]
            need = next((why for s in steps for rule, why in NEEDS if _matches(s, rule)), None)
            if need:
                block.skipped.append((command, need))
                continue
            kept = [s for s in steps if not any(_matches(s, rule) for rule, _ in SETUP)]
            if kept:
                block.commands.append(" && ".join(kept))
        blocks.append(block)
    return blocks


def test_every_readme_command_is_classified_and_the_lists_are_in_use():
    blocks = readme_blocks()
    commands = [c for b in blocks for c in b.commands]
    skipped = [c for b in blocks for c, _ in b.skipped]
    text = "\n".join(commands + skipped)
    for rule, _ in NEEDS + SETUP:
        assert rule in text, f"{rule!r} no longer matches a README command: remove it from the test"
    # The offline ones are the ones a newcomer starts with: they must stay runnable.
    for expected in ("trace2eval demo", "trace2eval run", "python run_eval.py", "trace2eval job run-local"):
        assert any(expected in c for c in commands), f"no runnable README command does {expected!r}"


@pytest.fixture
def fresh_clone(tmp_path) -> Path:
    """The repository's tracked files in a new folder, and `.venv` = the environment under test."""
    if sys.prefix == sys.base_prefix or not (Path(sys.prefix) / "bin" / "trace2eval").exists():
        missing("not running in a virtual environment with the trace2eval command", "run it from the README's venv")
    clone = tmp_path / "trace2eval"
    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
        if shutil.which("git") and (REPO / ".git").exists()
        else None
    )
    if listed is not None and listed.returncode == 0 and listed.stdout:
        for rel in filter(None, listed.stdout.split("\0")):
            source = REPO / rel
            if source.is_file():
                (clone / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, clone / rel, follow_symlinks=False)
    else:
        shutil.copytree(
            REPO,
            clone,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".git",
                ".venv",
                "__pycache__",
                ".pytest_cache",
                "sessions",
                "mlruns",
                "*.db",
                "trace2eval-demo",
                ".trace2eval",
            ),
        )
    (clone / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return clone


@pytest.mark.slow
def test_readme_commands_run_verbatim_in_a_fresh_clone(fresh_clone):
    bin_dir = str(fresh_clone / ".venv" / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_EXPERIMENT", "TRACE2EVAL_", "DATABRICKS_"))
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(Path(sys.prefix)))  # activated
    before = set(os.listdir(fresh_clone))
    ran = 0
    for block in readme_blocks():
        if not block.commands:
            continue
        script = "set -eo pipefail\n" + "\n".join(block.commands) + "\n"
        proc = subprocess.run(
            ["bash", "-c", script], cwd=fresh_clone, env=env, capture_output=True, text=True, timeout=900
        )
        expected = next((code for text, code in EXPECTED_EXIT if text in script), 0)
        assert proc.returncode == expected, (
            f"README block at line {block.line} exited {proc.returncode}:\n{script}\n"
            f"--- stdout\n{proc.stdout[-2000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
        assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
        ran += len(block.commands)
    assert ran >= 4
    # The demo and the runs wrote only where the README says: nothing like ./mlruns appeared.
    gained = set(os.listdir(fresh_clone)) - before
    assert gained <= {"trace2eval-demo", "sessions", "vol", ".trace2eval"}, gained
    assert not (fresh_clone / "trace2eval-demo" / "mlruns").exists()
