"""Scorer specs, and `scorers.py` rendered from them.

A spec is data (`state/scorer_specs.json`); the code is rendered from a template with every value
written as a Python literal (`repr`), so the file compiles by construction and trace text can only
ever appear as data. The trace-reading helpers (`features.py`, `checks.py`) are copied verbatim,
so the generated checks are exactly the ones the analysis ran.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from trace2eval.analysis.findings import REGISTRY
from trace2eval.generate.render import render

# "rule": a declarative check an LLM session proposed (generate/rules.py), rendered like "code".
# "custom_code" is only ever read: model-written code from earlier versions, never rendered (see
# `legacy_code_specs`).
ScorerKind = Literal["code", "rule", "builtin_judge", "guidelines", "make_judge", "custom_code"]
CODE_KINDS = ("code", "rule", "custom_code")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
BUILTIN_JUDGES = {
    "safety": "Safety",
    "relevance_to_query": "RelevanceToQuery",
    # Conversation judges of the pinned MLflow: session-level, they read every turn of a session.
    "user_frustration": "UserFrustration",
    "conversation_completeness": "ConversationCompleteness",
    "knowledge_retention": "KnowledgeRetention",
}
CONVERSATION_JUDGES = {
    "user_frustration": "Built-in conversation judge: the user is not left frustrated at the end.",
    "conversation_completeness": "Built-in conversation judge: every user request is addressed by the end.",
    "knowledge_retention": "Built-in conversation judge: the agent keeps what the user said in earlier turns.",
}
ScorerLevel = Literal["trace", "session"]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    kind: ScorerKind
    doc: str  # what it checks and the evidence that motivated it
    check: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    finding: str | None = None
    guidelines: list[str] = field(default_factory=list)
    instructions: str | None = None  # make_judge
    code: str | None = None  # legacy custom_code only: kept in the state file, never rendered
    source: str = "deterministic"
    # "session": scores a conversation (MLflow calls it once per session with the session's traces)
    level: ScorerLevel = "trace"

    @property
    def is_code(self) -> bool:
        return self.kind in CODE_KINDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScorerSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _evidence_line(finding: dict[str, Any]) -> str:
    ids = ", ".join(finding["evidence"][:3])
    more = finding["prevalence"]["traces"] - min(3, len(finding["evidence"]))
    return f"Evidence: {finding['prevalence']['traces']} trace(s) ({finding['prevalence']['rate']:.0%}), e.g. {ids}" + (
        f" and {more} more" if more > 0 else ""
    )


def specs_from_analysis(analysis: dict[str, Any]) -> list[ScorerSpec]:
    specs: list[ScorerSpec] = []
    for f in analysis.get("findings", []):
        if f.get("scorer", "code") != "code" or f.get("kept") is False:
            continue
        specs.append(
            ScorerSpec(
                name=f["id"],
                kind="code",
                check=f["check"],
                params=f["params"],
                finding=f["id"],
                doc=f"{f['title']}. {f['description']} Fails when {f['threshold_rationale']}. {_evidence_line(f)}.",
            )
        )
    if (analysis.get("conversations") or {}).get("has_session_metadata"):
        # Behaviour, not cost: a slow or token-heavy turn is a per-trace matter (severity low).
        low = {f["id"] for f in analysis.get("findings", []) if f.get("severity") == "low"}
        specs.extend(conversation_specs([s for s in specs if s.kind == "code" and s.finding not in low]))
    specs.append(ScorerSpec(name="safety", kind="builtin_judge", doc="Built-in judge: no harmful content (baseline)."))
    specs.append(
        ScorerSpec(
            name="relevance_to_query", kind="builtin_judge", doc="Built-in judge: the response addresses the request."
        )
    )
    for f in analysis.get("findings", []):
        # What a judge can check where code cannot read intent; an LLM session may rewrite the text
        # in the agent's own vocabulary.
        lines = REGISTRY[f["id"]].judge_guidelines if f["id"] in REGISTRY else ()
        if lines:
            specs.append(
                ScorerSpec(
                    name=f"{f['id']}_judge",
                    kind="guidelines",
                    guidelines=list(lines),
                    finding=f["id"],
                    doc=f"LLM judge for what code cannot read in '{f['title']}'. {_evidence_line(f)}.",
                )
            )
    return specs


def conversation_specs(code_specs: list[ScorerSpec]) -> list[ScorerSpec]:
    """Session-level scorers, for traces grouped into conversations: each per-trace check run over
    the conversation's turns (it fails when a turn fails), and MLflow's conversation judges."""
    specs = [
        replace(
            s,
            name=f"{s.name[: 64 - len(SESSION_SUFFIX)]}{SESSION_SUFFIX}",
            level="session",
            doc=f"Conversation-level: fails when any turn of the conversation fails '{s.name}'. {s.doc}",
        )
        for s in code_specs
    ]
    specs += [ScorerSpec(name=n, kind="builtin_judge", level="session", doc=d) for n, d in CONVERSATION_JUDGES.items()]
    return specs


SESSION_SUFFIX = "_conversation"


def legacy_code_specs(specs: list[ScorerSpec]) -> tuple[list[ScorerSpec], list[dict[str, Any]]]:
    """Split off scorers whose code a model wrote (state from earlier versions): never rendered.

    They are dropped with a reason a person can act on; a scorers session can re-propose the
    same check as a declarative rule.
    """
    kept = [s for s in specs if s.kind != "custom_code"]
    dropped = [
        {
            "name": s.name,
            "kind": s.kind,
            "source": s.source,
            "reason": "model-written scorer code is no longer run; the check can be re-proposed as a declarative rule",
        }
        for s in specs
        if s.kind == "custom_code"
    ]
    return kept, dropped


def render_scorers(specs: list[ScorerSpec], judge_model: str | None) -> str:
    for spec in specs:  # names become function names: only plain identifiers, checked here too
        if not IDENTIFIER.match(spec.name) or keyword.iskeyword(spec.name):
            raise ValueError(f"scorer name {spec.name!r} is not a valid Python identifier")
    specs, _ = legacy_code_specs(specs)
    features_src = (Path(__file__).parents[1] / "traces" / "features.py").read_text(encoding="utf-8")
    checks_src = (Path(__file__).parents[1] / "traces" / "checks.py").read_text(encoding="utf-8")
    code = render(
        "scorers.py.j2",
        code_specs=[s for s in specs if s.kind in ("code", "rule")],
        judge_specs=[s for s in specs if not s.is_code],
        builtin=BUILTIN_JUDGES,
        judge_model=judge_model,
        features_src=_strip_module_header(features_src),
        checks_src=_strip_module_header(checks_src),
    )
    ast.parse(code)  # rendered from literals: a syntax error here is a trace2eval bug
    return code


def _strip_module_header(src: str) -> str:
    """Drop the module docstring and `from __future__` line: the rendered file has its own."""
    tree = ast.parse(src)
    body = tree.body
    start = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        start = body[0].end_lineno or 0
    lines = src.splitlines()[start:]
    return "\n".join(l for l in lines if not l.startswith("from __future__")).strip() + "\n"
