"""The mlflow-evaluation skill: every code block runs against the installed MLflow, the files ship
inside the package (what a wheel on Databricks gets), and the repository's skills/ points at them."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from skillrun import blocks

from trace2eval.env import SAFE_MLFLOW_ENV
from trace2eval.llm.skills import CORE_FILES, core_context, read_skill, skill_files

REPO = Path(__file__).parents[2]
PACKAGE_SKILL = REPO / "src" / "trace2eval" / "skills" / "mlflow-evaluation"


def test_the_skill_has_its_entry_point_and_references():
    files = skill_files()
    assert files[0] == "SKILL.md"
    assert set(CORE_FILES) <= set(files)
    for name in ("patterns-datasets.md", "patterns-scorers.md", "patterns-evaluation.md", "patterns-trace-analysis.md"):
        assert f"references/{name}" in files
    skill = read_skill("SKILL.md")
    assert skill.startswith("---\nname: mlflow-evaluation\n")
    for ref in files[1:]:
        assert f"`{ref}`" in skill, f"SKILL.md does not say when to load {ref}"
    assert all(f'<skill_file path="{p}">' in core_context() for p in CORE_FILES)


def test_each_session_carries_the_skill_files_it_needs():
    from trace2eval.llm.prompts import system_prompt

    gotchas = read_skill("references/GOTCHAS.md").strip()
    interfaces = read_skill("references/CRITICAL-interfaces.md").strip()
    skill = read_skill("SKILL.md").strip()
    prompts = {task: system_prompt(task, 10) for task in ("initializer", "dataset", "scorers", "fix")}
    assert all(skill in p for p in prompts.values())
    assert gotchas not in prompts["initializer"] and gotchas in prompts["dataset"]
    assert interfaces in prompts["scorers"] and interfaces in prompts["fix"] and interfaces not in prompts["dataset"]


def test_repository_skills_folder_is_the_packaged_one():
    link = REPO / "skills"
    assert link.is_symlink() and link.resolve() == (REPO / "src" / "trace2eval" / "skills").resolve()


@pytest.mark.parametrize("path", skill_files())
def test_every_code_block_is_valid_python(path):
    found = blocks(read_skill(path))
    assert found, f"{path} has no python blocks"
    for line, code in found:
        ast.parse(code, filename=f"{path}:{line}")


@pytest.mark.slow
@pytest.mark.parametrize("path", skill_files())
def test_every_code_block_runs_against_the_installed_mlflow(path, tmp_path):
    env = {**os.environ, **SAFE_MLFLOW_ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'skill.db'}"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("skillrun.py")), str(PACKAGE_SKILL / path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"OK {len(blocks(read_skill(path)))} blocks"


@pytest.mark.slow
def test_the_built_package_carries_the_skill_and_the_sandbox_child(tmp_path):
    """`build_py` is the step of building a wheel that collects modules and package data."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    built = tmp_path / "built"
    proc = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(built)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (built / "trace2eval" / "llm" / "_samplechild.py").exists()
    # Imported from the built tree (not this checkout), the skill files are found.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import trace2eval.llm.skills as s; print(s.__file__); print(len(s.skill_files()), len(s.core_context()))",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(built)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    where, counts = probe.stdout.strip().splitlines()
    assert where.startswith(str(built))
    assert counts.split()[0] == str(len(skill_files())) and int(counts.split()[1]) > 5000
