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
        raise Trace2EvalError(f"the {SKILL} skill files are missing from the installed package",
                              "reinstall trace2eval (the wheel ships them under trace2eval/skills)")
    return tuple(found)


def read_skill(path: str) -> str:
    """One skill file by its relative path (as listed by `skill_files`)."""
    if path not in skill_files():
        raise Trace2EvalError(f"no skill file {path!r}", f"choose one of: {', '.join(skill_files())}")
    return (_root() / path).read_text(encoding="utf-8")


def core_context() -> str:
    """The skill files every session gets in its system prompt, each in a tagged block."""
    parts = [f'<skill_file path="{p}">\n{read_skill(p).strip()}\n</skill_file>' for p in CORE_FILES if p in skill_files()]
    return "\n\n".join(parts)
