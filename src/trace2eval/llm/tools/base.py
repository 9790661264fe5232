"""Tool definitions and the dispatcher: schema-checked input, errors returned to the model, capped output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from trace2eval.errors import Trace2EvalError
from trace2eval.llm import schemas
from trace2eval.llm.tools.context import ToolContext, ToolError
from trace2eval.traces.redact import redact_text

MAX_RESULT_CHARS = 9_000


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Callable[[ToolContext, dict[str, Any]], Any]

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    malformed: bool = False  # the call itself was broken (unknown tool, input off its schema)


def _cap(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[cut {len(text) - limit} characters: ask for less, e.g. a smaller page or detail level]"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _fit(out: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """JSON of `out` within `limit`: the longest list is shortened (and the cut noted) so the
    model always gets valid JSON rather than a truncated document."""
    text = _dumps(out)
    if len(text) <= limit or not isinstance(out, dict):
        return text
    out = dict(out)
    lists = [k for k, v in out.items() if isinstance(v, list) and v]
    if not lists:
        return text
    key = max(lists, key=lambda k: len(_dumps(out[k])))
    items = list(out[key])
    total = len(items)
    while items and len(text) > limit:
        items.pop()
        out[key] = items
        out["note"] = f"{key}: showing {len(items)} of {total} to stay small; ask for fewer (page_size) or page on"
        text = _dumps(out)
    return text


class ToolBox:
    """Dispatches tool calls: unknown tools and malformed input come back as error results."""

    def __init__(self, tools: list[Tool], ctx: ToolContext):
        self.tools = {t.name: t for t in tools}
        self.ctx = ctx
        # Optional wrapper around each call, e.g. to record it as a span: around(name, args, call) -> ToolResult
        self.around: Callable[[str, Any, Callable[[], ToolResult]], ToolResult] | None = None

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self.tools.values()]

    def call(self, name: str, args: Any) -> ToolResult:
        if self.around is not None:
            return self.around(name, args, lambda: self._call(name, args))
        return self._call(name, args)

    def _call(self, name: str, args: Any) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult(f"unknown tool {name!r}; the tools are: {', '.join(self.tools)}", True, True)
        if not isinstance(args, dict):
            return ToolResult(f"the input of {name} must be a JSON object, got {type(args).__name__}", True, True)
        problems = schemas.errors(tool.input_schema, args)
        if problems:
            return ToolResult(f"invalid input for {name}: " + "; ".join(problems), True, True)
        try:
            out = tool.handler(self.ctx, args)
        except ToolError as exc:
            return ToolResult(_cap(redact_text(str(exc))), True)
        except Trace2EvalError as exc:
            return ToolResult(_cap(redact_text(str(exc))), True)
        except Exception as exc:  # a bug in a tool: tell the model, record it, keep the session going
            detail = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.ctx.internal_errors.append({"tool": name, "error": detail})
            return ToolResult(f"internal error in {name} ({detail}); try another way or finish", True)
        return ToolResult(_cap(redact_text(out if isinstance(out, str) else _fit(out))))
