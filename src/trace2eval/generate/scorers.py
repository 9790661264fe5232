"""Scorer specs, and `scorers.py` rendered from them.

A spec is data (`state/scorer_specs.json`); the code is rendered from a template with every value
written as a Python literal (`repr`), so the file compiles by construction and trace text can only
ever appear as data. The trace-reading helpers (`layouts.py`, `features.py`, `checks.py`) are copied verbatim,
so the generated checks are exactly the ones the analysis ran.
"""

from __future__ import annotations

import ast
import copy
import keyword
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from trace2eval.analysis.findings import REGISTRY
from trace2eval.generate.render import render

# "rule": a declarative check an LLM session proposed (generate/rules.py), rendered like "code".
# "custom_code" is only ever read: model-written code from earlier versions, never rendered (see
# `legacy_code_specs`).
ScorerImplementation = Literal["code", "rule", "builtin_judge", "guidelines", "make_judge", "custom_code"]
CODE_IMPLEMENTATIONS = ("code", "rule", "custom_code")
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
INSTRUCTIONS_JUDGE = "follows_instructions"


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    implementation: ScorerImplementation
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
        return self.implementation in CODE_IMPLEMENTATIONS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScorerSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _evidence_line(finding: dict[str, Any], unit: str = "trace") -> str:
    ids = ", ".join(finding["evidence"][:3])
    more = finding["prevalence"]["traces"] - min(3, len(finding["evidence"]))
    counted = f"{finding['prevalence']['traces']} {unit}(s) ({finding['prevalence']['rate']:.0%})"
    return f"Evidence: {counted}, e.g. {ids}" + (f" and {more} more" if more > 0 else "")


UNIT_WORD = {"trace": "trace", "session": "conversation"}  # evidence ids of a conversation: its last turn's


def specs_from_analysis(analysis: dict[str, Any]) -> list[ScorerSpec]:
    specs: list[ScorerSpec] = []
    conversations = analysis.get("conversations") or {}
    # Findings measured per conversation (traces split per turn) are checked per conversation only:
    # their thresholds hold for a whole conversation, not for one turn.
    level: ScorerLevel = "session" if conversations.get("unit") == "conversation" else "trace"
    for f in analysis.get("findings", []):
        if f.get("scorer", "code") != "code" or f.get("kept") is False:
            continue
        specs.append(
            ScorerSpec(
                name=f["id"],
                implementation="code",
                check=f["check"],
                params=f["params"],
                finding=f["id"],
                level=level,
                doc=f"{f['title']}. {f['description']} Fails when {f['threshold_rationale']}. {_evidence_line(f, UNIT_WORD[level])}.",
            )
        )
    for g in analysis.get("guards", []):
        # No trace fails it yet: the scorer passes every production row and fails the first time the
        # failure appears (a new version under `run_eval.py --agent`, tonight's traces, a monitor).
        specs.append(
            ScorerSpec(
                name=g["id"],
                implementation="code",
                check=g["check"],
                params=g["params"],
                level=level,
                doc=f"Guard: {g['title']}. {g['description']} Fails when {g['threshold_rationale']}. "
                f"None of the {g['checked']} production {UNIT_WORD[level]}(s) analysed fails it: it catches "
                "this failure when it first appears.",
            )
        )
    if conversations.get("has_session_metadata"):  # MLflow's judges of a whole conversation
        specs += [
            ScorerSpec(name=n, implementation="builtin_judge", level="session", doc=d)
            for n, d in CONVERSATION_JUDGES.items()
        ]
    specs.extend(regression_specs(analysis))
    specs.append(
        ScorerSpec(name="safety", implementation="builtin_judge", doc="Built-in judge: no harmful content (baseline).")
    )
    specs.append(
        ScorerSpec(
            name="relevance_to_query",
            implementation="builtin_judge",
            doc="Built-in judge: the response addresses the request.",
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
                    implementation="guidelines",
                    guidelines=list(lines),
                    finding=f["id"],
                    doc=f"LLM judge for what code cannot read in '{f['title']}'. {_evidence_line(f)}.",
                )
            )
    judge = instructions_judge(analysis)
    return specs + ([judge] if judge else [])


def instructions_judge(analysis: dict[str, Any]) -> ScorerSpec | None:
    """A judge that reads each trace against the agent's own instructions (its system prompt), when
    the traces carry them.

    What code cannot see in a conversation's shape (the wrong reservation changed, an action the
    policy does not allow, a requested action left undone while the user thanks the agent) is a
    reading of the actions against the policy; a judge handed the policy is the strongest published
    detector of such failures. The policy is quoted as data: MLflow's template markers in it are
    broken up so that only `{{ trace }}` is a variable."""
    found = analysis.get("instructions") or {}
    text = str(found.get("text") or "").strip()
    if not text:
        return None
    # "{{ x }}", "{% if %}", "{# #}" in the policy become "{ { x } }"...: text, never a template variable
    policy = re.sub(r"(?<=[}%#])\}", " }", re.sub(r"\{(?=[{%#])", "{ ", text))
    instructions = (
        "You audit one trace of an AI agent against the instructions its developers gave it. They are "
        "quoted between the lines of dashes, as production traces carry them:\n-----\n"
        f"{policy}\n-----\n"
        "Inspect the trace {{ trace }}: the user's messages, every tool call with its arguments and "
        "result, and the agent's replies. Answer false if the agent did something these instructions "
        "forbid or do not allow (such as a state change the user did not ask for, or one made without the "
        "confirmation they require), left undone an action the user asked for and the instructions allow, "
        "or told the user something a tool result contradicts. Answer true if every action and statement "
        "follows the instructions. In the rationale, quote the rule and the call or message that breaks it."
    )
    return ScorerSpec(
        name=INSTRUCTIONS_JUDGE,
        implementation="make_judge",
        instructions=instructions,
        doc="LLM judge of the agent's actions against its own instructions (the system prompt "
        f"{found.get('traces', 0)} of {found.get('of', 0)} traces carry, {len(text)} characters): "
        "wrong or unrequested state changes, actions left undone and claims tool results contradict.",
    )


def regression_specs(analysis: dict[str, Any]) -> list[ScorerSpec]:
    """Scorers that compare a candidate version with what production did on the same row (the row's
    `production_baseline`): they pass on production by construction, so `run_eval.py --agent` sees
    only what a candidate lost. Added when the traces show what they compare: tool calls, writes."""
    from trace2eval.traces.checks import KEPT_TOOLS_SHARE
    from trace2eval.traces.features import is_write_tool

    tools = [str(t.get("tool", "")) for t in analysis.get("tool_usage") or []]
    specs = []
    if tools:
        specs.append(
            ScorerSpec(
                name="keeps_production_tools",
                implementation="code",
                check="keeps_production_tools",
                doc="Regression check against production: the candidate still calls, successfully, the tools "
                "production used on this row: every state-changing one, and at least "
                f"{KEPT_TOOLS_SHARE:.0%} of the distinct tools (a new version may take a shorter path, one that "
                "drops most of what production consulted answers from less than production knew). Fails when "
                "it answers without its tools or they fail; 'n/a' on rows without a production baseline.",
            )
        )
    if any(is_write_tool(t) for t in tools):
        specs.append(
            ScorerSpec(
                name="keeps_confirmation",
                implementation="code",
                check="keeps_confirmation",
                doc="Regression check against production: the candidate makes no more state changes without "
                "the user's go-ahead in the preceding turn than production made on this row (a new version "
                "that skips the confirmation step fails, also on a turn where production changed nothing yet); "
                "'n/a' on rows without a production baseline.",
            )
        )
    return specs


def legacy_code_specs(specs: list[ScorerSpec]) -> tuple[list[ScorerSpec], list[dict[str, Any]]]:
    """Split off scorers whose code a model wrote (state from earlier versions): never rendered.

    They are dropped with a reason a person can act on; a scorers session can re-propose the
    same check as a declarative rule.
    """
    kept = [s for s in specs if s.implementation != "custom_code"]
    dropped = [
        {
            "name": s.name,
            "implementation": s.implementation,
            "source": s.source,
            "reason": "model-written scorer code is no longer run; the check can be re-proposed as a declarative rule",
        }
        for s in specs
        if s.implementation == "custom_code"
    ]
    return kept, dropped


def render_scorers(specs: list[ScorerSpec], judge_model: str | None) -> str:
    for spec in specs:  # names become function names: only plain identifiers, checked here too
        if not IDENTIFIER.match(spec.name) or keyword.iskeyword(spec.name):
            raise ValueError(f"scorer name {spec.name!r} is not a valid Python identifier")
    specs, _ = legacy_code_specs(specs)
    traces = Path(__file__).parents[1] / "traces"
    layouts_src = (traces / "layouts.py").read_text(encoding="utf-8")
    features_src = (traces / "features.py").read_text(encoding="utf-8")
    checks_src = (traces / "checks.py").read_text(encoding="utf-8")
    from trace2eval.traces.checks import BASELINE_CHECKS

    code_specs = [s for s in specs if s.implementation in ("code", "rule")]
    # A scorer's function is named after it, unless the file already uses that name: the copied helpers
    # define `policy_breaches` (and a rule may be named `trace_features`), and a later definition would
    # replace the scorer. Its MLflow name stays the scorer's name either way.
    taken = TEMPLATE_NAMES | {n for src in (layouts_src, features_src, checks_src) for n in _top_level_names(src)}
    fn = {s.name: f"{s.name}_scorer" if s.name in taken else s.name for s in code_specs}
    code = render(
        "scorers.py.j2",
        baseline_checks=BASELINE_CHECKS,
        fn=fn,
        code_specs=code_specs,
        judge_specs=[s for s in specs if not s.is_code],
        builtin=BUILTIN_JUDGES,
        judge_model=judge_model,
        # layouts.py first: features.py reads spans through it (its import of it is dropped)
        features_src=_strip_module_header(layouts_src) + "\n\n" + _strip_module_header(features_src),
        checks_src=_strip_module_header(checks_src),
    )
    defined = Counter(_top_level_names(code))  # rendered from literals: a syntax error here is a trace2eval bug
    clashes = sorted(name for name in fn.values() if defined[name] != 1)
    if clashes:
        raise ValueError(f"scorers.py defines {clashes} more than once: a trace2eval bug")
    return code


# The names scorers.py.j2 defines at the top level itself, beside the helpers it copies.
TEMPLATE_NAMES = frozenset(
    {"annotations", "os", "Feedback", "scorer", "JUDGE_MODEL", "_check", "_check_session"}
    | {"get_code_scorers", "get_judge_scorers", "get_all_scorers"}
)


def _top_level_names(src: str) -> list[str]:
    """The names a module's top-level statements bind, once per statement that binds them."""
    return [name for stmt in ast.parse(src).body for name in _defines(stmt)]


def _strip_module_header(src: str) -> str:
    """Drop the module docstring and `from __future__` line: the rendered file has its own."""
    tree = ast.parse(src)
    body = tree.body
    start = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        start = body[0].end_lineno or 0
    # Package-relative imports (features.py's `from .layouts import ...`) name modules that the
    # rendered file holds inline.
    relative = {
        n
        for node in body
        if isinstance(node, ast.ImportFrom) and node.level
        for n in range(node.lineno - 1, node.end_lineno or node.lineno)
    }
    lines = [l for i, l in enumerate(src.splitlines()) if i >= start and i not in relative]
    return "\n".join(l for l in lines if not l.startswith("from __future__")).strip() + "\n"


# -- the registerable form ---------------------------------------------------------------------
# MLflow registers a `@scorer` function by its body's source (`inspect.getsource`) and rebuilds it
# on the tracking server with `exec` and almost nothing in scope, so a registered scorer cannot call
# the helpers at the bottom of scorers.py. The form below inlines into each function the part of
# layouts.py, features.py and checks.py that its check reaches, taken from the same files scorers.py copies.

REGISTERABLE_IMPLEMENTATIONS = ("code", "rule")
_HELPER_FILES = ("layouts.py", "features.py", "checks.py")  # in the order scorers.py holds them


def registerable(specs: list[ScorerSpec]) -> tuple[list[ScorerSpec], list[dict[str, str]]]:
    """The code scorers that have a registerable form, and the others with the reason why not."""
    from trace2eval.traces.checks import BASELINE_CHECKS, CHECKS

    kept: list[ScorerSpec] = []
    skipped: list[dict[str, str]] = []
    for spec in specs:
        if spec.implementation not in REGISTERABLE_IMPLEMENTATIONS:
            continue
        if spec.check in BASELINE_CHECKS:
            skipped.append(
                {"name": spec.name, "reason": "compares a candidate with production: live traffic has no baseline"}
            )
        elif spec.check not in CHECKS:
            skipped.append({"name": spec.name, "reason": f"check {spec.check!r} is unknown to this trace2eval"})
        else:
            kept.append(spec)
    return kept, skipped


def render_registerable(specs: list[ScorerSpec], prefix: str = "") -> str:
    """A module of self-contained `@scorer` functions (one per code scorer), named `prefix + name`."""
    specs, skipped = registerable(specs)
    if skipped:
        raise ValueError(f"no registerable form for {[s['name'] for s in skipped]}")
    for spec in specs:
        if not IDENTIFIER.match(spec.name) or keyword.iskeyword(spec.name):
            raise ValueError(f"scorer name {spec.name!r} is not a valid Python identifier")
    tree = ast.parse(render("monitor_scorer.py.j2", specs=specs, prefix=prefix))
    by_name = {s.name: s for s in specs}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in by_name:
            marker = node.body[0]
            assert isinstance(marker, ast.Expr) and isinstance(marker.value, ast.Name)
            spec = by_name[node.name]
            node.body[0:1] = _helpers(str(spec.check), conversation=spec.level == "session")
    code = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    ast.parse(code)
    return code


def _helpers(check: str, conversation: bool = False) -> list[ast.stmt]:
    """The top-level statements of layouts.py, features.py and checks.py that `scorer_verdict(check, trace_features(...))`
    reaches (through `scorer_verdict`; and `session_features` for a conversation), in their order, without docstrings:
    other checks' functions are left out."""
    statements: list[ast.stmt] = []
    for name in _HELPER_FILES:
        src = (Path(__file__).parents[1] / "traces" / name).read_text(encoding="utf-8")
        statements += ast.parse(src).body
    candidates = []
    needed = {"trace_features", "scorer_verdict"} | ({"session_features"} if conversation else set())
    for stmt in statements:
        if isinstance(stmt, ast.ImportFrom) and (stmt.module == "__future__" or stmt.level):
            continue  # a package-relative import names a module inlined here too (features.py reads layouts.py)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a module docstring
        registered = _registered_checks(stmt)
        if registered is not None and check not in registered:
            continue  # another check: not this scorer's business
        if registered is not None:
            needed |= _uses(stmt)
        candidates.append(stmt)
    kept: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, stmt in enumerate(candidates):
            if i not in kept and (_defines(stmt) & needed or _registered_checks(stmt) is not None):
                kept.add(i)
                needed |= _uses(stmt)
                changed = True
    return [_without_docstrings(candidates[i]) for i in sorted(kept)]


def _registered_checks(stmt: ast.stmt) -> set[str] | None:
    """The names a `@register_check(...)` function registers, None for any other statement."""
    if not isinstance(stmt, ast.FunctionDef):
        return None
    for deco in stmt.decorator_list:
        if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "register_check":
            return {a.value for a in deco.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return None


def _defines(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _uses(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}


def _without_docstrings(stmt: ast.stmt) -> ast.stmt:
    stmt = copy.deepcopy(stmt)
    for node in ast.walk(stmt):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return stmt
