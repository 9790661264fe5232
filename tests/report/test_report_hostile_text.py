"""Reports over state that holds hostile trace text: code spans that cannot be closed, control and
bidi characters shown as escapes, and wording that cannot be misread (failed runs, pass rates)."""

from __future__ import annotations

import json
import unicodedata

from markdown_it import MarkdownIt

from trace2eval.printable import printable
from trace2eval.report import write_report
from trace2eval.report.context import describe_agent
from trace2eval.report.render import md_code

BACKTICKS = "tool`name``with ```runs|and\\|pipes"
CONTROL = "red\x1b[31m alert\x00 nul \u202eexe.txt\u2066 \u200bzero \r back"


def _hidden(text: str) -> list[str]:
    return sorted(
        {hex(ord(ch)) for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") and ch not in "\n\t"}
    )


def _code_spans(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [
        child.content for token in tokens if token.children for child in token.children if child.type == "code_inline"
    ]


def test_a_code_span_holds_any_backtick_run():
    for text in ("a`b", "`edge`", "x```y", "``", "a|b", "plain"):
        inline = _code_spans(f"before {md_code(text, in_table=False)} after\n")
        assert inline == [text], (text, md_code(text, in_table=False))
        in_table = _code_spans(f"| h | i |\n|---|---|\n| {md_code(text)} | x |\n")
        assert in_table == [text], (text, md_code(text))


def test_backticks_in_trace_text_do_not_break_out_of_code_spans(session_copy):
    analysis = json.loads(session_copy.analysis_file.read_text())
    analysis["error_patterns"] = [
        {
            "where": "tool",
            "name": BACKTICKS + " [x](javascript:alert(1))",
            "message": "m",
            "count": 1,
            "traces": 1,
            "evidence": ["tr-1`<b>x</b>`"],
        }
    ]
    session_copy.analysis_file.write_text(json.dumps(analysis))
    markdown = write_report(session_copy, previous=None, read_traces=False).markdown.read_text()
    spans = _code_spans(markdown)
    # The whole name is one code span: nothing of it became a link, emphasis or HTML.
    assert BACKTICKS.replace("\\|", "\\\\|") + " [x](javascript:alert(1))" in spans
    assert "tr-1`<b>x</b>`" in spans
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert 'href="javascript' not in html and "<b>x</b>" not in html


def test_control_and_bidi_characters_never_reach_the_reports(session_copy):
    analysis = json.loads(session_copy.analysis_file.read_text())
    analysis["agent"]["description"] = CONTROL
    analysis["findings"][0]["title"] = CONTROL
    analysis["findings"][0]["description"] = CONTROL
    analysis["query_types"][0]["name"] = CONTROL
    analysis["error_patterns"] = [
        {
            "where": "tool",
            "name": CONTROL,
            "message": CONTROL,
            "count": 1,
            "traces": 1,
            "evidence": ["tr-\x1b]8;;http://evil\x07x"],
        }
    ]
    session_copy.analysis_file.write_text(json.dumps(analysis))
    files = write_report(session_copy, previous=None, read_traces=False)
    for path in (files.html, files.markdown):
        text = path.read_text(encoding="utf-8")
        assert _hidden(text) == [], (path.name, _hidden(text))
        assert "\\x1b[31m" in text and "\\u202eexe.txt" in text and "\\x00" in text


def test_terminal_output_shows_control_characters_as_escapes(cli, session_copy):
    plan = json.loads(session_copy.tasks_file.read_text())
    plan["tasks"][0]["error"] = "bad\x1b[2J\x1b]0;title\x07 [red]markup[/red] \u202eevil"
    session_copy.tasks_file.write_text(json.dumps(plan))
    code, out, err = cli("status", session_copy.dir)
    assert code == 0 and _hidden(out + err) == [], _hidden(out + err)
    assert "\\x1b[2J" in out and "[red]markup[/red]" in out
    assert printable("a\x1b\u202eb\nc") == "a\\x1b\\u202eb\nc"
    assert printable("\U000e0001") == "\\U000e0001" and printable("é 中 😀") == "é 中 😀"


def test_a_failed_run_does_not_open_with_a_content_free_sentence(cli, store, tmp_path):
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "s")
    assert code == 1
    (session_dir,) = (tmp_path / "s").iterdir()
    for name in ("report.html", "report.md"):
        text = (session_dir / name).read_text()
        assert "A agent" not in text
        assert "Nothing is known about the agent yet: the session stopped before its traces were analyzed" in text
    assert describe_agent({"agent": {"type": "assistant"}})["paragraph"].startswith("An assistant.")
    assert describe_agent({"agent": {"tools": {"search": 3}}})["paragraph"].startswith("An agent using 1 tools")


def test_pass_rates_are_worded_as_the_datasets_not_the_agents(session_copy):
    files = write_report(session_copy, previous=None, read_traces=False)
    html, markdown = files.html.read_text(), files.markdown.read_text()
    for text in (html, markdown):
        assert "mean pass rate" not in text
        assert "over-sample failures by design" in text and "not the agent's production pass rate" in text
        assert "dataset pass rate" in text and "in production" in text
    analysis = json.loads(session_copy.analysis_file.read_text())
    flagged = {t for f in analysis["findings"] for t in f["all_evidence"]}
    share = 1 - len(flagged) / analysis["trace_summary"]["total_analyzed"]
    assert f"{share:.0%} of the production traces analyzed are flagged by no finding" in html
    # A code scorer that repeats a finding's check shows that finding's production pass share.
    finding = next(f for f in analysis["findings"] if f["prevalence"].get("rate"))
    row = html[html.index('<section id="scorers">') :]
    row = row[row.index(f"<td><code>{finding['id']}</code>") :]
    row = row[: row.index("</tr>")]
    assert f"{1 - finding['prevalence']['rate']:.1%}" in row
