"""The finding registry: one definition per finding, one name end to end."""

from __future__ import annotations

from pathlib import Path

from trace2eval.analysis.findings import REGISTRY, readme_table
from trace2eval.traces.checks import CHECKS

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_table_is_the_registry():
    assert readme_table() in README.read_text(encoding="utf-8"), (
        "README.md's findings table is out of date: paste trace2eval.analysis.findings.readme_table()"
    )


def test_every_finding_has_a_check_of_its_own_name():
    for spec in REGISTRY.values():
        assert spec.check == spec.id and spec.id in CHECKS, spec.id
        assert spec.title and spec.summary and spec.description, spec.id
    assert sum(spec.scorer == "judge" for spec in REGISTRY.values()) == 1  # give_up_or_handoff


def test_checks_answer_to_the_names_earlier_versions_wrote():
    """A living suite's scorer specs name checks as they were called before: they still run."""
    for old, new in {
        "trace_ok": "error_traces",
        "tool_errors": "tool_failures",
        "confirmed_writes": "unconfirmed_writes",
        "uses_tools": "answered_without_tools",
        "no_give_up": "give_up_or_handoff",
    }.items():
        assert CHECKS[old] is CHECKS[new]


def test_a_finding_applies_only_when_its_data_is_there():
    class Types:
        names, terms = ["all"], [["x"]]

    row = {
        "trace_id": "t",
        "query_type": "all",
        "n_tool_calls": 0,
        "n_tool_errors": 0,
        "n_unrecovered_tool_errors": 0,
        "max_identical_calls": 0,
        "max_same_tool_streak": 0,
        "n_user_turns": 1,
        "n_write_calls": 0,
        "max_write_repeats": 0,
        "tools": [],
        "duration_ms": 0.0,
        "tokens_in": 0,
        "tokens_out": 0,
    }
    applies = {spec.id for spec in REGISTRY.values() if spec.derive([row] * 12, Types()) is not None}
    # No tools, no writes, no timing, no tokens, no model calls: only the checks every trace can be read for.
    assert applies == {"error_traces", "tool_failures", "missing_answer", "give_up_or_handoff"}
    with_llm = {**row, "llm_calls": 1}
    assert REGISTRY["llm_failures"].derive([with_llm] * 12, Types()) is not None
