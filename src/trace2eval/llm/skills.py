"""The MLflow evaluation skill: verified API notes the model reads before it writes anything.

The files live inside the package (`trace2eval/skills/mlflow-evaluation/`), so an installed wheel
has them too; the repository's top-level `skills/` is a symlink to that folder.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from trace2eval.errors import Trace2EvalError

SKILL = "mlflow-evaluation"
# Always in the system prompt: the entry point, the mistakes to avoid, the exact signatures.
CORE_FILES = ("SKILL.md", "references/GOTCHAS.md", "references/CRITICAL-interfaces.md")
# What each session gets in its system prompt (the rest via load_skill). The prompt is re-sent
# with every turn, so sessions that write no code carry only what they use: the benchmark on
# 180 traces measured the full core as a third of all tokens sent.
SESSION_FILES = {
    "initializer": ("SKILL.md",),
    "dataset": ("SKILL.md", "references/GOTCHAS.md"),
    "scorers": CORE_FILES,
    "fix": CORE_FILES,
}


def _root():
    return resources.files("trace2eval") / "skills" / SKILL


@lru_cache(maxsize=1)
def skill_files() -> tuple[str, ...]:
    """Relative paths of every Markdown file of the skill, SKILL.md first."""
    root = _root()
    found = ["SKILL.md"] if (root / "SKILL.md").is_file() else []
    refs = root / "references"
    if refs.is_dir():
        found += sorted(f"references/{p.name}" for p in refs.iterdir() if p.name.endswith(".md"))
    if not found:
        raise Trace2EvalError(
            f"the {SKILL} skill files are missing from the installed package",
            "reinstall trace2eval (the wheel ships them under trace2eval/skills)",
        )
    return tuple(found)


def read_skill(path: str) -> str:
    """One skill file by its relative path (as listed by `skill_files`)."""
    if path not in skill_files():
        raise Trace2EvalError(f"no skill file {path!r}", f"choose one of: {', '.join(skill_files())}")
    return (_root() / path).read_text(encoding="utf-8")


def core_context(task: str | None = None) -> str:
    """The skill files a session gets in its system prompt (all core files when `task` is None),
    each in a tagged block."""
    files = SESSION_FILES.get(task, CORE_FILES) if task else CORE_FILES
    parts = [f'<skill_file path="{p}">\n{read_skill(p).strip()}\n</skill_file>' for p in files if p in skill_files()]
    return "\n\n".join(parts)
