"""Reading tools: the analysis, the session's state files, the skill, and `finish`.

The analysis is shown through an allow-list of sections and fields, so anything else that may be
stored there (label-based measurements, say) never reaches the model.
"""

from __future__ import annotations

from typing import Any

from trace2eval.llm.skills import read_skill, skill_files
from trace2eval.llm.tools.base import Tool
from trace2eval.llm.tools.context import ToolContext, ToolError
from trace2eval.sessions.files import read_json
from trace2eval.state.analysis import Analysis
from trace2eval.state.versions import upgrade_specs
from trace2eval.traces.features import request_text, to_text

ROWS_PER_PAGE = 15
PROFILE_FILE = "agent_profile.json"


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d}


def analysis_section(typed: Analysis, section: str) -> Any:
    """One section of the analysis, reduced to model-safe fields."""
    analysis = typed.model_dump()  # the sections shown are free-form: picked by key
    if section == "overview":
        out = _pick(analysis, ("agent", "trace_summary", "sample", "dataset_strategy", "span_types"))
        out["request_shapes"] = [_pick(s, ("shape", "count")) for s in analysis.get("request_shapes", [])]
        out["findings"] = [
            _pick(f, ("id", "title", "severity")) | {"traces": f.get("prevalence", {}).get("traces")}
            for f in analysis.get("findings", [])
        ]
        out["query_types"] = [_pick(q, ("name", "count")) for q in analysis.get("query_types", [])]
        return out
    if section == "findings":
        return [
            _pick(
                f,
                (
                    "id",
                    "title",
                    "severity",
                    "check",
                    "params",
                    "description",
                    "threshold_rationale",
                    "prevalence",
                    "query_types",
                    "examples",
                ),
            )
            | {"evidence": f.get("evidence", [])[:6], "counter_examples": f.get("counter_examples", [])[:3]}
            for f in analysis.get("findings", [])
        ]
    if section == "query_types":
        return [
            _pick(q, ("name", "terms", "count", "error_rate", "tool_calls_p50", "findings", "examples"))
            | {"evidence": q.get("evidence", [])[:5]}
            for q in analysis.get("query_types", [])
        ]
    if section == "tools":
        return [
            _pick(t, ("tool", "calls", "traces", "failures", "failure_rate", "p50_ms", "p95_ms", "evidence"))
            for t in analysis.get("tool_usage", [])
        ]
    if section == "errors":
        return [
            _pick(e, ("where", "name", "message", "count", "traces")) | {"evidence": e.get("evidence", [])[:3]}
            for e in analysis.get("error_patterns", [])[:15]
        ]
    raise ToolError(f"unknown section {section!r}")


def read_analysis(ctx: ToolContext, args: dict[str, Any]) -> Any:
    out = analysis_section(ctx.analysis(), args.get("section", "overview"))
    for f in ctx.analysis().findings:
        ctx.seen_traces.update(f.evidence)
    for q in ctx.analysis().query_types:
        ctx.seen_traces.update(q.evidence)
    return out


def _dataset(ctx: ToolContext, page: int) -> dict[str, Any]:
    path = ctx.session.dataset_json
    if not path.exists():
        raise ToolError("the dataset has not been built yet")
    rows = read_json(path)["rows"]
    start = page * ROWS_PER_PAGE
    shown = []
    for row in rows[start : start + ROWS_PER_PAGE]:
        meta = row.get("metadata", {})
        shown.append(
            {
                "source_trace": meta.get("source_trace"),
                "case_type": meta.get("case_type"),
                "query_type": meta.get("query_type"),
                "findings": meta.get("findings", []),
                "request": to_text(request_text(row.get("inputs")), 160),
                "expectations": sorted((row.get("expectations") or {}).keys()),
            }
        )
        ctx.seen_traces.add(meta.get("source_trace"))
    return {
        "rows": shown,
        "total": len(rows),
        "page": page,
        "next_page": page + 1 if start + ROWS_PER_PAGE < len(rows) else None,
    }


def read_state(ctx: ToolContext, args: dict[str, Any]) -> Any:
    name = args["name"]
    session = ctx.session
    if name == "plan":
        return [{"task": t.name, "status": t.status, "description": t.description} for t in session.plan().tasks]
    if name == "agent_profile":
        path = session.state_dir / PROFILE_FILE
        return (
            read_json(path) if path.exists() else {"note": "no agent profile yet (the initializer session writes it)"}
        )
    if name == "scorers":
        if not session.scorer_specs_file.exists():
            raise ToolError("no scorer specs yet (the scorers task writes them)")
        data = upgrade_specs(read_json(session.scorer_specs_file))
        keep = (
            "name",
            "implementation",
            "doc",
            "check",
            "params",
            "finding",
            "guidelines",
            "instructions",
            "code",
            "source",
        )
        return {
            "scorers": [{k: s[k] for k in keep if s.get(k) not in (None, [], {})} for s in data["scorers"]],
            "dropped": data.get("dropped", []),
        }
    if name == "dataset":
        return _dataset(ctx, int(args.get("page", 0)))
    if name == "validation":
        validation = session.validation()
        if not validation:
            raise ToolError("no validation has run yet")
        out = {
            "validation_status": validation.validation_status,
            "validation_checks": validation.validation_checks,
            "problems": validation.problem_list(),
            "metrics": validation.metrics,
            "gate_status": validation.gate_status,
        }
        details = validation.details
        out["details"] = _pick(details, ("rows", "rows_with_trace", "judges_run", "exit_code", "timed_out", "scorers"))
        out["stderr_tail"] = (details.get("stderr_tail") or "")[-1500:]
        fix_log = session.state_dir / "fix_log.json"
        if fix_log.exists():
            out["fix_log"] = read_json(fix_log)
        return out
    if name == "proposals":
        return {"accepted": ctx.accepted, "refused": ctx.refused}
    raise ToolError(f"unknown state {name!r}")


def load_skill(ctx: ToolContext, args: dict[str, Any]) -> str:
    return read_skill(args["path"])


def finish(ctx: ToolContext, args: dict[str, Any]) -> str:
    ctx.finished = args.get("summary") or "finished"
    return "ok: the session ends now and its accepted proposals are applied"


TOOLS = [
    Tool(
        "read_analysis",
        "Read the deterministic analysis of the traces. section=overview (agent, volumes, finding and query type "
        "names), findings (checks, thresholds, evidence ids), query_types, tools (usage and failures), errors.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"section": {"enum": ["overview", "findings", "query_types", "tools", "errors"]}},
        },
        read_analysis,
    ),
    Tool(
        "read_state",
        "Read a state file of this session: plan, agent_profile, scorers (specs incl. code), dataset (rows, paged), "
        "validation (last result and fix log), proposals (what you submitted in this session and what was refused).",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"enum": ["plan", "agent_profile", "scorers", "dataset", "validation", "proposals"]},
                "page": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        },
        read_state,
    ),
    Tool(
        "load_skill",
        "Load a file of the mlflow-evaluation skill (verified MLflow 3 patterns). Load the matching reference "
        "before you write scorers, judges or dataset rows.",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["path"],
            "properties": {"path": {"enum": list(skill_files())}},
        },
        load_skill,
    ),
    Tool(
        "finish",
        "End the session when your proposals are submitted (or there is nothing worth adding).",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"summary": {"type": "string", "maxLength": 1500}},
        },
        finish,
    ),
]
