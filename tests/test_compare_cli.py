"""`trace2eval compare SESSION --agent TARGET`: the suite's own run_eval.py against a candidate, its
exit code passed on, and the session's report gains a "Candidate vs production" section."""

from __future__ import annotations

import json

import pytest

from candidate_suite import CANDIDATE, make_suite

pytestmark = pytest.mark.slow


def test_compare_a_session_gates_and_reports(cli, tmp_path):
    session, _store = make_suite(tmp_path)
    code, out, err = cli("compare", session.dir, "--agent", f"{CANDIDATE}:regressed")
    assert code == 1, out[-3000:] + err[-3000:]
    saved = json.loads((session.dir / "state" / "candidate.json").read_text())
    assert saved["passed"] is False and saved["agent"] == f"{CANDIDATE}:regressed"
    lost = {f["source_trace"] for f in saved["flipped"] if f["direction"] == "regressed"}
    report = (session.dir / "report.md").read_text()
    assert "## Candidate vs production" in report and all(t in report for t in lost)
    assert "Candidate vs production" in (session.dir / "report.html").read_text()

    code, out, err = cli("compare", session.dir, "--agent", f"{CANDIDATE}:unchanged")
    assert code == 0, out[-3000:] + err[-3000:]
    assert json.loads((session.dir / "state" / "candidate.json").read_text())["passed"] is True


def test_compare_names_a_folder_without_a_suite(cli, tmp_path):
    code, _out, err = cli("compare", tmp_path, "--agent", "x:y")
    assert code == 1 and "holds no evaluation suite" in err and "Traceback" not in err
