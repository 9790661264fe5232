"""Trace text reaches generated code only as data: hostile text in every field that comes from
traces or a model cannot change the code's shape.

The check is structural: a file rendered with hostile strings must have exactly the AST of the same
file rendered with a harmless placeholder in each of those strings (string constants aside).
"""

from __future__ import annotations

import ast

import pytest
from astshape import shape

from trace2eval.generate.scorers import ScorerSpec, render_scorers
from trace2eval.generate.script import render_eval_dataset

BREAKERS = [
    '"""',
    "'''",
    '\\"""',
    '\\\\"""',
    "\\",
    '"',
    "'",
    "\n",
    "\r",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u2028",
    "\u2029",
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\ud800",
    "{{ x }}",
    "{% raw %}",
    "#",
    "\t",
]
STATEMENT = "import os; os.system('touch /tmp/owned')"


def corpus() -> list[str]:
    """Each breaker before a statement, and the wrap attack: an escaped triple quote placed at every
    offset around the wrap width, so a line break after escaping would split it."""
    found = [f"{b}\n{STATEMENT}\n{b}" for b in BREAKERS]
    found += [f'{"w" * k} \\""" {STATEMENT} """ end' for k in range(70, 100)]
    found += [" ".join(["word"] * k) + '\\"""' + "\n    " + STATEMENT for k in range(15, 25)]
    found += ["w" * k + '"' * q + ";__import__('os').system('x');'" for q in (2, 4, 5) for k in (60, 88, 89, 90, 91)]
    found.append("".join(BREAKERS) + STATEMENT)
    return found


def specs(text: str) -> list[ScorerSpec]:
    return [
        ScorerSpec(
            name="extra_routing",
            implementation="code",
            check="routing_path",
            doc=text,
            params={"max_distinct": 1, "tools": [text, text[::-1]]},
        ),
        ScorerSpec(
            name="claimed_cancel",
            implementation="rule",
            check="rule",
            doc=text,
            source="llm",
            params={"fail_when": {"text": "answer", "contains_any": [text]}, "message": text},
        ),
        ScorerSpec(name="policy_judge", implementation="guidelines", guidelines=[text, text], doc=text, source="llm"),
        ScorerSpec(name="whole_trace_judge", implementation="make_judge", instructions=text + " {{ trace }}", doc=text),
        ScorerSpec(name="safety", implementation="builtin_judge", doc=text),
    ]


@pytest.mark.parametrize("text", corpus())
def test_hostile_text_cannot_change_the_scorers_code(text):
    baseline = shape(render_scorers(specs("placeholder"), judge_model="databricks:/x"))
    assert shape(render_scorers(specs(text), judge_model="databricks:/x")) == baseline


@pytest.mark.parametrize("text", corpus())
def test_hostile_text_cannot_change_the_dataset_loader(text):
    assert shape(render_eval_dataset(text)) == shape(render_eval_dataset("placeholder"))


def test_the_docstring_still_reads_as_the_text():
    code = render_scorers(specs('Sub-agents "a" and \\b\nnext line'), judge_model=None)
    tree = ast.parse(code)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "extra_routing")
    assert ast.get_docstring(fn) == 'Sub-agents "a" and \\b\nnext line'


@pytest.mark.parametrize("name", ["bad name", "x\n__import__('os')", "class", "Upper", "1abc", "a" * 70])
def test_a_name_that_is_not_an_identifier_is_refused(name):
    with pytest.raises(ValueError, match="not a valid Python identifier"):
        render_scorers([ScorerSpec(name=name, implementation="code", check="trace_ok", doc="d")], None)


def test_model_written_code_from_an_old_state_file_is_never_rendered():
    legacy = ScorerSpec(
        name="old_llm_scorer",
        implementation="custom_code",
        source="llm",
        doc="d",
        code="@scorer\ndef old_llm_scorer(outputs):\n    import os\n    return True\n",
    )
    code = render_scorers(specs("x") + [legacy], None)
    assert "old_llm_scorer" not in code and "import os\n    return True" not in code
