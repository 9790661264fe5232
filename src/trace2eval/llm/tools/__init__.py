"""Tools the model can call: JSON-schema'd, small outputs, no shell, writes only in the session.

`toolbox_for(task, ctx)` gives each session the reading tools plus the submit tools of its task.
"""

from __future__ import annotations

from trace2eval.llm.tools.base import Tool, ToolBox, ToolResult
from trace2eval.llm.tools.context import Staged, ToolContext, ToolError

__all__ = ["Tool", "ToolBox", "ToolContext", "ToolError", "ToolResult", "Staged", "toolbox_for"]


def toolbox_for(task: str, ctx: ToolContext) -> ToolBox:
    """The tools of one session: reading tools for all, submit tools for the task's own outputs."""
    from trace2eval.llm.tools import reading, submit, traces

    return ToolBox([*traces.TOOLS, *reading.TOOLS, *submit.tools_for(task)], ctx)
