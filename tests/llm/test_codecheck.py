"""Review of LLM-written scorer code: what passes, what is refused and why."""

from __future__ import annotations

import pytest

from trace2eval.llm.codecheck import check_name, reserved_names, review

GOOD = '''@scorer
def mentions_reservation(outputs, trace):
    """Pass when the answer names the reservation the tools touched."""
    import re
    from mlflow.entities import SpanType

    ids = set()
    for span in trace.search_spans(span_type=SpanType.TOOL):
        ids.update(re.findall(r"[A-Z0-9]{6}", str(span.inputs)))
    text = answer_text(outputs)
    if not ids:
        return Feedback(value=True, rationale="no reservation in the tool calls")
    named = sorted(i for i in ids if i in text)
    return Feedback(value=bool(named), rationale=f"named {named or 'none'} of {sorted(ids)}")
'''


def test_a_well_formed_scorer_passes_review():
    assert review(GOOD, "mentions_reservation") == []


@pytest.mark.parametrize("code, expected", [
    ("@scorer\ndef s_bad(outputs):\n    import os\n    os.system('id')\n    return True\n", "import os is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    os.system('id')\n    return True\n", "os is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    import subprocess\n    return True\n", "import subprocess is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    import socket\n    return True\n", "import socket is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    from urllib import request\n    return True\n", "import from urllib is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    return eval('1')\n", "eval is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    exec('x=1')\n    return True\n", "exec is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    return compile('1', 'f', 'eval') is None\n", "compile is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    return open('/etc/passwd').read() == ''\n", "open is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    return __import__('os') is None\n", "__import__ is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    return outputs.__class__.__mro__ is None\n", "attribute .__class__"),
    ("@scorer\ndef s_bad(outputs):\n    return '{0.__class__}'.format(outputs) == ''\n", "attribute .format"),
    ("@scorer\ndef s_bad(outputs):\n    return getattr(outputs, '_' + '_class_' + '_') is None\n", "getattr needs a constant"),
    ("@scorer\ndef s_bad(outputs):\n    import mlflow.entities\n    return True\n", "import mlflow.entities is not allowed"),
    ("@scorer\ndef s_bad(outputs):\n    from mlflow.tracking import MlflowClient\n    return True\n", "import from mlflow.tracking"),
    ("@scorer\ndef s_bad(outputs):\n    global JUDGE_MODEL\n    JUDGE_MODEL = 'x'\n    return True\n", "global/nonlocal"),
    ("@scorer\ndef s_bad(outputs):\n    g = (x for x in [1])\n    return g.gi_frame.f_globals is None\n", "attribute .gi_frame"),
    ("import json\n\n@scorer\ndef s_bad(outputs):\n    return True\n", "exactly one top-level function"),
    ("@scorer\ndef s_bad(outputs):\n    return True\n\nprint('at import')\n", "exactly one top-level function"),
    ("@scorer\ndef s_bad(outputs, request):\n    return True\n", "parameters must be a non-empty subset"),
    ("@scorer\ndef s_bad(**kwargs):\n    return True\n", "no *args/**kwargs"),
    ("def s_bad(outputs):\n    return True\n", "decorate the function with exactly @scorer"),
    ("@scorer(name='other')\ndef s_bad(outputs):\n    return True\n", "decorate the function"),
    ("@scorer\ndef other_name(outputs):\n    return True\n", "is named 'other_name' but the scorer is 's_bad'"),
    ("@scorer\ndef s_bad(outputs):\n    return (\n", "syntax error"),
])
def test_hostile_or_broken_code_is_refused_with_a_reason(code, expected):
    reasons = review(code, "s_bad")
    assert any(expected in r for r in reasons), reasons


def test_names_that_would_shadow_helpers_or_builtins_are_refused():
    assert "trace_features" in reserved_names() and "run_check" in reserved_names()
    assert check_name("trace_features", set()) and check_name("len", set()) and check_name("get_code_scorers", set())
    assert "already exists" in check_name("tool_failures", {"tool_failures"})[0]
    assert "snake_case" in check_name("BadName", set())[0]
    assert check_name("policy_followed", {"tool_failures"}) == []
