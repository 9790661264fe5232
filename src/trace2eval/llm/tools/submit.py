"""Submit tools: the model proposes, these check, and what passes is staged for the session's end.

Every proposal is checked against its JSON schema (by the tool box), then semantically here:
trace ids must be real traces the model was shown, names must not collide with anything in
scorers.py, judges must construct in MLflow, and a custom check is a declarative condition (data
that trace2eval's own interpreter evaluates; nothing the model writes is ever executed), tried on
sample rows. Refusals are recorded with their reasons.
"""

from __future__ import annotations

import re
from typing import Any

from trace2eval.generate import rules
from trace2eval.generate.scorers import ScorerSpec, render_scorers
from trace2eval.llm import schemas
from trace2eval.llm.names import check_name
from trace2eval.llm.samplerun import run_samples
from trace2eval.llm.tools.base import Tool
from trace2eval.llm.tools.context import ToolContext, ToolError
from trace2eval.llm.tools.traces import fetch_checked
from trace2eval.sessions.files import read_json
from trace2eval.state.specs import load_specs
from trace2eval.traces.checks import run_check
from trace2eval.traces.features import trace_features
from trace2eval.traces.redact import redact

MAX_STAGED_ROWS = 30
MAX_STAGED_SCORERS = 12
MAX_VALIDATIONS = 2
SAMPLE_ROWS = 10
JUDGE_PROBE_MODEL = "databricks:/judge-probe"  # judges are only constructed here, never called
TEMPLATE_VARS = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")
JUDGE_VARS = {"inputs", "outputs", "trace"}


# ------------------------------------------------------------------------------------------------
# Helpers


def current_specs(ctx: ToolContext) -> tuple[list[ScorerSpec], list[dict[str, Any]]]:
    """The specs on disk with this session's staged proposals applied (replacements swapped in)."""
    if not ctx.session.scorer_specs_file.exists():
        return list(ctx.staged.specs), []
    specs, dropped = load_specs(ctx.session)
    replaced = set(ctx.staged.replaces.values())
    staged_names = {s.name for s in ctx.staged.specs}
    specs = [s for s in specs if s.name not in replaced and s.name not in staged_names]
    return specs + list(ctx.staged.specs), dropped


def _taken(ctx: ToolContext, replaces: str | None = None) -> set[str]:
    specs, _ = current_specs(ctx)
    return {s.name for s in specs if s.name != replaces}


def _check_replaces(ctx: ToolContext, item: str, name: str, replaces: str | None, allowed: set[str]) -> None:
    if not replaces:
        return
    specs, dropped = current_specs(ctx)
    target = next((s for s in specs if s.name == replaces), None)
    was_dropped = any(d.get("name") == replaces for d in dropped)
    if target is None and not was_dropped:
        ctx.refuse(item, name, [f"replaces {replaces!r}, which is neither a scorer nor a dropped scorer"])
    if target is not None and target.implementation not in allowed:
        ctx.refuse(
            item,
            name,
            [
                f"{replaces!r} is a {target.implementation} scorer; only {', '.join(sorted(allowed))} "
                "scorers can be replaced this way"
            ],
        )


def _finding_ok(ctx: ToolContext, item: str, name: str, finding: str | None) -> None:
    if finding and ctx.analysis().finding(finding) is None:
        ctx.refuse(item, name, [f"no finding {finding!r} in the analysis"])


def _stage_spec(ctx: ToolContext, spec: ScorerSpec, replaces: str | None) -> None:
    if len(ctx.staged.specs) >= MAX_STAGED_SCORERS:
        ctx.refuse(spec.implementation, spec.name, [f"at most {MAX_STAGED_SCORERS} new scorers per session"])
    ctx.staged.specs = [s for s in ctx.staged.specs if s.name != spec.name] + [spec]
    if replaces:
        ctx.staged.replaces[spec.name] = replaces


def sample_rows(ctx: ToolContext) -> list[dict[str, Any]]:
    """Up to SAMPLE_ROWS dataset rows with their real traces (serialized), covering each case type."""
    if ctx.samples is not None:
        return ctx.samples
    rows = read_json(ctx.session.dataset_json)["rows"] if ctx.session.dataset_json.exists() else []
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row.get("metadata", {}).get("case_type", "?"), []).append(row)
    picked: list[dict[str, Any]] = []
    while len(picked) < SAMPLE_ROWS and any(by_type.values()):
        for group in by_type.values():
            if group and len(picked) < SAMPLE_ROWS:
                picked.append(group.pop(0))
    samples = []
    for row in picked:
        source = row.get("metadata", {}).get("source_trace")
        try:
            trace = ctx.mlflow_client().get_trace(source) if source else None
        except Exception:
            trace = None
        if trace is None:
            continue
        samples.append(
            {
                "inputs": row["inputs"],
                "outputs": row["outputs"],
                "expectations": row.get("expectations") or {},
                "source_trace": source,
                "trace": trace.to_json(),
            }
        )
    if not samples:
        raise ToolError("no dataset rows with readable traces to test scorers on")
    ctx.samples = samples
    return samples


def _sample_run(ctx: ToolContext, specs: list[ScorerSpec], names: list[str]):
    code = render_scorers(specs, ctx.config.judge_model)
    return run_samples(code, names, sample_rows(ctx), ctx.scratch)


# ------------------------------------------------------------------------------------------------
# initializer


def submit_agent_profile(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    analysis = ctx.analysis()
    name = args["agent_name"]
    reasons = []
    clusters = {q.name for q in analysis.query_types}
    for q in args.get("query_types", []):
        if q["cluster"] not in clusters:
            reasons.append(
                f"query type {q['cluster']!r} is not in the analysis (they are: {', '.join(sorted(clusters))})"
            )
    findings = {f.id for f in analysis.findings}
    for d in args["evaluation_dimensions"]:
        if d.get("finding") and d["finding"] not in findings:
            reasons.append(f"dimension {d['name']}: no finding {d['finding']!r}")
        unknown = [t for t in d.get("evidence", []) if t not in ctx.seen_traces]
        if unknown:
            reasons.append(f"dimension {d['name']}: evidence {', '.join(unknown[:3])} was never shown to you")
    if reasons:
        ctx.refuse("agent_profile", name, reasons)
    ctx.staged.profile = redact(args)
    ctx.accept(
        "agent_profile",
        name,
        f"{len(args.get('query_types', []))} query types, {len(args['evaluation_dimensions'])} dimensions",
    )
    return {"accepted": True, "note": "the profile is saved when the session ends; later sessions read it"}


# ------------------------------------------------------------------------------------------------
# dataset


def submit_dataset_rows(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    existing = set()
    if ctx.session.dataset_json.exists():
        existing = {r.get("metadata", {}).get("source_trace") for r in read_json(ctx.session.dataset_json)["rows"]}
    results = []
    for row in args["rows"]:
        tid = row["source_trace"]
        reasons = []
        if tid not in ctx.seen_traces and tid not in existing:
            reasons.append(
                "unknown trace id: use ids that search_traces, get_trace, read_analysis or the dataset showed you"
            )
        else:
            try:
                fetch_checked(ctx, tid)
            except ToolError as exc:
                reasons.append(str(exc))
        if not reasons and len(ctx.staged.rows) >= MAX_STAGED_ROWS:
            reasons.append(f"at most {MAX_STAGED_ROWS} rows per session")
        if not reasons and tid in existing and not row.get("expectations"):
            reasons.append(
                "this trace is already a dataset row: add expectations to annotate it, or pick another trace"
            )
        if reasons:
            ctx.refused.append({"item": "dataset_row", "name": tid, "reasons": reasons})
            results.append({"source_trace": tid, "accepted": False, "reasons": reasons})
            continue
        staged = redact(
            {
                "source_trace": tid,
                "reason": row["reason"],
                "case_type": row.get("case_type", "edge_case"),
                "expectations": row.get("expectations"),
            }
        )
        ctx.staged.rows = [r for r in ctx.staged.rows if r["source_trace"] != tid] + [staged]
        action = "annotates the existing row" if tid in existing else "adds a row"
        ctx.accept("dataset_row", tid, f"{action}: {row['reason']}")
        results.append({"source_trace": tid, "accepted": True, "action": action})
    return {"results": results, "staged_rows": len(ctx.staged.rows)}


def _input_shapes(ctx: ToolContext) -> list[list[str]]:
    rows = read_json(ctx.session.dataset_json)["rows"] if ctx.session.dataset_json.exists() else []
    return sorted({tuple(sorted(r["inputs"])) for r in rows if isinstance(r.get("inputs"), dict)})


def submit_edge_cases(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    shapes = [list(s) for s in _input_shapes(ctx)]
    results = []
    for i, case in enumerate(args["cases"]):
        keys = sorted(case["inputs"])
        reasons = []
        if shapes and keys not in shapes:
            reasons.append(
                f"inputs have keys {keys}; the agent's real inputs have {shapes[0]}"
                + (f" (or {shapes[1:4]})" if len(shapes) > 1 else "")
            )
        if case.get("variant_of") and case["variant_of"] not in ctx.seen_traces:
            reasons.append(f"variant_of {case['variant_of']!r} was never shown to you")
        if reasons:
            ctx.refused.append({"item": "edge_case", "name": f"case {i}", "reasons": reasons})
            results.append({"case": i, "accepted": False, "reasons": reasons})
            continue
        ctx.staged.edge_cases.append(redact(case))
        ctx.accept("edge_case", f"case {len(ctx.staged.edge_cases)}", case["reason"])
        results.append({"case": i, "accepted": True})
    return {"results": results, "staged_edge_cases": len(ctx.staged.edge_cases)}


# ------------------------------------------------------------------------------------------------
# scorers


def submit_guidelines_judge(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    name, replaces = args["name"], args.get("replaces")
    _check_replaces(ctx, "guidelines", name, replaces, {"guidelines"})
    reasons = [] if name == replaces else check_name(name, _taken(ctx, replaces))
    _finding_ok(ctx, "guidelines", name, args.get("finding"))
    if not reasons:
        try:
            from mlflow.genai.scorers import Guidelines

            Guidelines(name=name, guidelines=args["guidelines"], model=JUDGE_PROBE_MODEL)
        except Exception as exc:
            reasons.append(f"MLflow rejected the judge: {str(exc)[:300]}")
    if reasons:
        ctx.refuse("guidelines", name, reasons)
    spec = ScorerSpec(
        name=name,
        implementation="guidelines",
        guidelines=redact(args["guidelines"]),
        finding=args.get("finding"),
        doc=redact(args["doc"]) + (f" (rewrites {replaces})" if replaces else ""),
        source="llm",
    )
    _stage_spec(ctx, spec, replaces)
    ctx.accept("guidelines", name, args["doc"])
    return {"accepted": True, "name": name, "replaces": replaces}


def submit_custom_judge(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    name = args["name"]
    instructions = args["instructions"]
    reasons = check_name(name, _taken(ctx))
    _finding_ok(ctx, "make_judge", name, args.get("finding"))
    used = set(TEMPLATE_VARS.findall(instructions))
    if not used & JUDGE_VARS:
        reasons.append("the instructions must use {{ inputs }}, {{ outputs }} or {{ trace }}")
    if used - JUDGE_VARS:
        reasons.append(
            f"only {{{{ inputs }}}}, {{{{ outputs }}}} and {{{{ trace }}}} may be used (got "
            f"{', '.join(sorted(used - JUDGE_VARS))}): rows without expectations would make "
            "{{ expectations }} judges error; put row-specific rules in dataset expectations instead"
        )
    if not reasons:
        try:
            from mlflow.genai.judges import make_judge

            make_judge(name=name, instructions=instructions, model=JUDGE_PROBE_MODEL, feedback_value_type=bool)
        except Exception as exc:
            reasons.append(f"MLflow rejected the judge: {str(exc)[:300]}")
    if reasons:
        ctx.refuse("make_judge", name, reasons)
    spec = ScorerSpec(
        name=name,
        implementation="make_judge",
        instructions=redact(instructions),
        finding=args.get("finding"),
        doc=redact(args["doc"]),
        source="llm",
    )
    _stage_spec(ctx, spec, None)
    ctx.accept("make_judge", name, args["doc"])
    return {"accepted": True, "name": name}


def submit_custom_check(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """A declarative check (data, never code): validated, tried on the sample rows, then staged."""
    name, replaces = args["name"], args.get("replaces")
    _check_replaces(ctx, "rule", name, replaces, {"rule", "custom_code"})
    reasons = [] if name == replaces else check_name(name, _taken(ctx, replaces))
    _finding_ok(ctx, "rule", name, args.get("finding"))
    reasons += rules.limits(args["fail_when"])
    if reasons:
        ctx.refuse("rule", name, reasons)
    params = {"fail_when": redact(args["fail_when"]), "message": redact(args["message"])}
    spec = ScorerSpec(
        name=name,
        implementation="rule",
        check="rule",
        params=params,
        finding=args.get("finding"),
        doc=f"{redact(args['doc'])} Fails when {rules.describe(params['fail_when'])}.",
        source="llm",
    )
    verdicts = _try_on_samples(ctx, params)
    _stage_spec(ctx, spec, replaces)
    counts = {"pass": sum(v for v, _ in verdicts), "fail": sum(not v for v, _ in verdicts)}
    ctx.accept("rule", name, f"{args['doc']} (sample rows: {counts})")
    note = (
        "it fails every sample row: is the condition inverted? (fail_when says when the check FAILS)"
        if verdicts and not counts["pass"]
        else "it gives the same verdict on every sample row: check that it discriminates"
        if len(set(v for v, _ in verdicts)) < 2
        else ""
    )
    return {
        "accepted": True,
        "name": name,
        "sample_rows": counts,
        "examples": [{"passed": v, "rationale": why} for v, why in verdicts[:4]],
        "note": note,
    }


def _try_on_samples(ctx: ToolContext, params: dict[str, Any]) -> list[tuple[bool, str]]:
    """The check's verdict on each sample row: trace2eval's own interpreter, in this process."""
    from mlflow.entities import Trace

    verdicts = []
    for row in sample_rows(ctx):
        trace = Trace.from_json(row["trace"]) if row.get("trace") else None
        features = trace_features(trace, row["inputs"], row["outputs"])
        verdicts.append(run_check("rule", features, params))
    return verdicts


def check_scorers(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    specs, _ = current_specs(ctx)
    names = [s.name for s in specs if s.is_code]
    return _sample_run(ctx, specs, names).summary()


def run_validation(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    """Fix session: apply the staged proposals now and run the real validation (bounded)."""
    from trace2eval.llm.apply import apply_staged

    if ctx.revalidate is None:
        raise ToolError("validation cannot run in this session: finish, and the task validates what you submitted")
    if ctx.validations >= MAX_VALIDATIONS:
        raise ToolError(f"validation already ran {MAX_VALIDATIONS} times in this session: finish now")
    ctx.validations += 1
    applied = apply_staged(ctx)
    ctx.applied_during_session.append(applied)
    outcome = ctx.revalidate("llm_fix", ctx.validations)
    ctx.validated = outcome.passed
    return {
        "applied": applied,
        "validation_status": outcome.status,
        "problems": outcome.problems[:8],
        "metrics": {k: v for k, v in outcome.metrics.items() if k.endswith("/mean")},
    }


# ------------------------------------------------------------------------------------------------
# Tool definitions

PROFILE = Tool(
    "submit_agent_profile",
    "Describe the agent: name, purpose, domains, a readable label for each clustered query type, the "
    "evaluation dimensions that matter (each tied to a finding or evidence), and notes for the dataset "
    "and scorers sessions.",
    schemas.AGENT_PROFILE,
    submit_agent_profile,
)
ROWS = Tool(
    "submit_dataset_rows",
    "Add real traces as dataset rows (edge cases the automatic selection missed), or annotate existing rows, "
    "with expectations (expected_facts, expected_response, guidelines). Each row is checked separately.",
    schemas.DATASET_ROWS,
    submit_dataset_rows,
)
EDGE = Tool(
    "submit_edge_cases",
    "Propose synthetic requests (variants, adversarial or out-of-scope cases) with expectations. They have no "
    "recorded outputs, so they are saved for evaluation with a predict_fn, not run in this suite.",
    schemas.EDGE_CASES,
    submit_edge_cases,
)
GUIDELINES = Tool(
    "submit_guidelines_judge",
    "Add a Guidelines LLM judge (pass/fail rules in this agent's own terms), or rewrite an existing one "
    "with `replaces`.",
    schemas.GUIDELINES_JUDGE,
    submit_guidelines_judge,
)
JUDGE = Tool(
    "submit_custom_judge",
    "Add a make_judge LLM judge with your own instructions (template variables {{ inputs }}, {{ outputs }}, "
    "{{ trace }}); it answers pass (true) or fail (false).",
    schemas.CUSTOM_JUDGE,
    submit_custom_judge,
)
RULE = Tool(
    "submit_custom_check",
    "Add a deterministic check as DATA (no code): `fail_when` is a condition over the features trace2eval "
    "extracts from every trace (numbers and flags like n_tool_calls, n_tool_errors, gives_up; text fields "
    "like answer, request, user_turns, tool_names, tool_args, tool_errors; counts of tool calls matching a "
    "filter), combined with all/any/not. The check FAILS when the condition holds; `message` is the "
    "rationale shown then. It is tried on sample rows and must work on any trace of the experiment.",
    schemas.CUSTOM_CHECK,
    submit_custom_check,
)
CHECK = Tool(
    "check_scorers",
    "Run every code scorer (existing and staged) on sample dataset rows in a sandbox; returns per-scorer values "
    "and problems, and whether the judges construct.",
    {"type": "object", "additionalProperties": False, "properties": {}},
    check_scorers,
)
VALIDATE = Tool(
    "run_validation",
    "Apply your accepted proposals and run the real validation (run_eval.py); at most twice per session.",
    {"type": "object", "additionalProperties": False, "properties": {}},
    run_validation,
)


def tools_for(task: str) -> list[Tool]:
    return {
        "initializer": [PROFILE],
        "dataset": [ROWS, EDGE],
        "scorers": [GUIDELINES, JUDGE, RULE, CHECK],
        "fix": [RULE, GUIDELINES, CHECK, VALIDATE],
    }[task]
