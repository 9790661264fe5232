"""report.html / report.md from real sessions: content, pictures, links, escaping, partial state."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from trace2eval.report import write_report
from trace2eval.report.links import UiLinks, safe_uri
from trace2eval.report.render import md_text
from trace2eval.sessions.session import Session

REQUIRED_PICTURES = {"latency", "failures", "query_types", "scorer_pass_rates"}
PAYLOAD = '<script>window.__pwned="script"</script><img src=x onerror="window.__pwned=\'img\'">'


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def test_finished_session_has_a_report_with_the_pictures(demo_session):
    html = (demo_session.dir / "report.html").read_text()
    markdown = (demo_session.dir / "report.md").read_text()
    tags = parse(html)
    images = [a for t, a in tags if t == "img"]
    figures = {a["id"].removeprefix("fig-") for t, a in tags if t == "figure"}
    assert REQUIRED_PICTURES <= figures, figures
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)  # self-contained
    assert not [a for t, a in tags if t in ("script", "link", "iframe")]
    assert any(t == "meta" and a.get("http-equiv") == "Content-Security-Policy" for t, a in tags)

    analysis = demo_session.analysis()
    for finding in analysis.findings:
        assert f'id="finding-{finding.id}"' in html
        assert finding.evidence[0] in html  # the evidence is named
    validation = demo_session.validation().model_dump()
    assert validation["run_id"] in html and "passed" in html
    for name in ("Overview", "Traces", "Findings", "Query types", "What the suite covers", "Scorers", "Validation"):
        assert f">{name}" in html

    # The markdown twin names the same findings and points at pictures that exist.
    for finding in analysis.findings:
        assert finding.id in markdown
    pictures = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", markdown)
    assert {p.split("/")[-1][:-4] for p in pictures} >= REQUIRED_PICTURES
    assert all((demo_session.dir / p).stat().st_size > 5000 for p in pictures)


def test_coverage_matrix_counts_dataset_rows_per_finding(session_copy):
    rows = json.loads(session_copy.dataset_json.read_text())["rows"]
    write_report(session_copy, previous=None)
    html = (session_copy.dir / "report.html").read_text()
    for finding in session_copy.analysis().findings:
        expected = sum(finding.id in r["metadata"]["findings"] for r in rows)
        row = re.search(rf"<tr><td><code>{finding.id}</code></td>(.*?)</tr>", html).group(1)
        assert re.findall(r"<strong>(\d+)</strong>", row) == [str(expected)]


def test_trace_ids_link_to_the_mlflow_ui_when_there_is_one(session_copy):
    files = write_report(session_copy, ui_url="http://127.0.0.1:5000", previous=None)
    html = files.html.read_text()
    trace_id = session_copy.analysis().findings[0].evidence[0]
    exp = session_copy.config().experiment_id
    assert f'href="http://127.0.0.1:5000/#/experiments/{exp}/traces?selectedEvaluationId={trace_id}"' in html
    assert (
        f"(http://127.0.0.1:5000/#/experiments/{exp}/traces?selectedEvaluationId={trace_id})"
        in files.markdown.read_text()
    )
    write_report(session_copy, previous=None)  # a sqlite store alone has no UI: ids, plus how to get links
    html = files.html.read_text()
    assert "selectedEvaluationId" not in html and "--ui-url http://127.0.0.1:5000" in html


def test_ui_links_for_each_kind_of_tracking_store(monkeypatch):
    monkeypatch.delenv("TRACE2EVAL_UI_URL", raising=False)
    http = UiLinks.for_tracking_uri("https://user:secret@mlflow.example.com/", "7")
    assert http.trace("tr-1") == "https://mlflow.example.com/#/experiments/7/traces?selectedEvaluationId=tr-1"
    assert http.run("abc") == "https://mlflow.example.com/#/experiments/7/runs/abc"
    monkeypatch.setenv("DATABRICKS_HOST", "adb-123.azuredatabricks.net")
    dbx = UiLinks.for_tracking_uri("databricks", "42")
    assert dbx.trace("tr-2") == "https://adb-123.azuredatabricks.net/ml/experiments/42/traces?selectedEvaluationId=tr-2"
    local = UiLinks.for_tracking_uri("sqlite:///x.db", "1")
    assert local.trace("tr-3") is None and local.experiment() is None
    assert UiLinks.for_tracking_uri("sqlite:///x.db", "1", "javascript:alert(1)").trace("t") is None
    assert UiLinks.for_tracking_uri("sqlite:///x.db", "1").trace("a/../b") is None
    assert http.trace("a&b=<c>").endswith("selectedEvaluationId=a%26b%3D%3Cc%3E")
    assert safe_uri("https://user:secret@host/path?token=abc") == "https://host/path"


def test_untrusted_text_stays_text(session_copy):
    analysis = json.loads(session_copy.analysis_file.read_text())
    analysis["agent"]["description"] = PAYLOAD + " [click](javascript:alert(1)) | cell"
    analysis["findings"][0]["examples"] = [PAYLOAD]
    analysis["findings"][0]["title"] = PAYLOAD
    analysis["query_types"][0]["examples"] = [PAYLOAD]
    analysis["query_types"][0]["name"] = "<b>bold</b>"
    analysis["error_patterns"] = [
        {"where": "tool", "name": PAYLOAD, "message": PAYLOAD, "count": 1, "traces": 1, "evidence": ["tr-<script>"]}
    ]
    session_copy.analysis_file.write_text(json.dumps(analysis))
    files = write_report(session_copy, previous=None)
    html = files.html.read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;window.__pwned" in html
    markdown = files.markdown.read_text()
    # Rendered as CommonMark (raw HTML allowed, as GitHub and most viewers do), no tag comes through:
    # outside code spans `<` is an entity; inside one it is literal text, never markup.
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script" not in rendered and "<img src=x" not in rendered and "<b>bold" not in rendered
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    assert not [t for t in tokens if t.type == "html_block"]
    assert not [c for t in tokens for c in t.children or [] if c.type == "html_inline"]
    assert not re.search(r"(?<!\\)\]\(javascript:", markdown)
    assert "&lt;script&gt;" in markdown


def test_markdown_escaping():
    assert md_text("a | b\nc") == r"a \| b c"
    assert md_text("[x](javascript:y)") == r"\[x\](javascript:y)"
    assert md_text("<i>&") == "&lt;i&gt;&amp;"
    assert md_text(None) == ""


def test_a_session_that_failed_early_still_gets_a_report(cli, store, tmp_path):
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "s")
    assert code == 1 and "has no traces" in err
    (session_dir,) = (tmp_path / "s").iterdir()
    html = (session_dir / "report.html").read_text()
    assert "failed" in html and "task initializer failed" in html and "has no traces" in html
    assert "The analysis has not run yet" in html
    published = json.loads((session_dir / "state" / "mlflow_publish.json").read_text())
    assert set(published) == {"completed"}  # nothing logged to MLflow yet; publishing itself finished


def test_state_files_from_another_version_do_not_break_the_report(session_copy):
    analysis = {
        "schema_version": 9,
        "findings": [
            {"id": "odd", "severity": "critical", "prevalence": {"traces": "many"}},
            {"title": "no id"},
            "not a dict",
        ],
        "query_types": [{"name": "q", "count": 3, "findings": {"odd": "x"}}],
        "trace_summary": {"total_analyzed": 3},
        "brand_new_section": {"anything": [1, 2]},
    }
    session_copy.analysis_file.write_text(json.dumps(analysis))
    (session_copy.state_dir / "validation_results.json").write_text(
        json.dumps({"validation_status": "failed", "metrics": None})
    )
    (session_copy.evaluation_dir / "eval_gates.json").write_text(
        json.dumps({"gates": {"x/mean": "high", "y/mean": {"min": 0.5}}})
    )
    files = write_report(session_copy, previous=None, read_traces=False)
    html = files.html.read_text()
    assert "odd" in html and "critical" in html and "validation failed" in html


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_report_is_rewritten_atomically(session_copy, name):
    before = (session_copy.dir / name).stat().st_mtime_ns
    write_report(session_copy, previous=None)
    assert (session_copy.dir / name).stat().st_mtime_ns >= before
    assert not list(session_copy.dir.glob(f".{name}.*.tmp"))


def test_points_are_cached_for_a_session_copied_away_from_its_store(session_copy, tmp_path):
    write_report(session_copy, previous=None)
    assert (session_copy.state_dir / "trace_points.json").exists()
    config = json.loads(session_copy.config_file.read_text())
    config["tracking_uri"] = f"sqlite:///{tmp_path / 'gone.db'}"
    session_copy.config_file.write_text(json.dumps(config))
    files = write_report(Session.open(session_copy.dir), previous=None)
    assert "latency" in files.charts and "volume" in files.charts
    assert "the per-trace distribution needs the tracking store" not in files.html.read_text()


def test_agreement_with_labels_is_shown_when_measured(session_copy):
    analysis = json.loads(session_copy.analysis_file.read_text())
    first, second = analysis["findings"][:2]
    first.update(
        kept=True,
        kept_reason="adds signal",
        agreement={
            "precision": 0.8,
            "recall": 0.3,
            "false_alarm_rate": 0.05,
            "cohen_kappa": 0.2,
            "flagged_bad": 8,
            "flagged_good": 2,
        },
    )
    second.update(
        kept=False,
        kept_reason="no signal",
        agreement={
            "precision": 0.1,
            "recall": 0.02,
            "false_alarm_rate": 0.2,
            "cohen_kappa": -0.1,
            "flagged_bad": 1,
            "flagged_good": 9,
        },
    )
    analysis["meta_evaluation"] = {
        "label": "thumbs_up",
        "labelled": 40,
        "bad": 12,
        "good": 28,
        "base_rate_bad": 0.3,
        "kept": [first["id"]],
        "dropped": [second["id"]],
        "combined": {
            "precision": 0.8,
            "recall": 0.3,
            "false_alarm_rate": 0.05,
            "cohen_kappa": 0.2,
            "flagged_bad": 8,
            "flagged_good": 2,
        },
    }
    session_copy.analysis_file.write_text(json.dumps(analysis))
    files = write_report(session_copy, previous=None, read_traces=False)
    html = files.html.read_text()
    assert "label_agreement" in files.charts
    assert 'id="labels"' in html and "thumbs_up" in html and "40 labelled traces, 12 of them bad (30%)" in html
    assert "dropped: no signal" in html and "recall 30%" in html
    assert "Scorers against the labels" in files.markdown.read_text()


def test_findings_that_flag_the_same_traces_say_so(session_copy):
    analysis = json.loads(session_copy.analysis_file.read_text())
    first, second = analysis["findings"][:2]
    second["all_evidence"] = list(first["all_evidence"])
    second["severity"] = "low"  # ranked below, so it is the one that points up
    first["severity"] = "high"
    session_copy.analysis_file.write_text(json.dumps(analysis))
    html = write_report(session_copy, previous=None, read_traces=False).html.read_text()
    row = html[html.index(f'id="finding-{second["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert f'100% of these traces are also flagged by <a href="#finding-{first["id"]}">' in row
    first_row = html[html.index(f'id="finding-{first["id"]}"') :]
    assert "also flagged by" not in first_row[: first_row.index("</tr>")]


def test_below_gate_uses_the_gates_tolerance(session_copy):
    validation = session_copy.validation().model_dump()
    low, ok = sorted(validation["metrics"])[:2]
    validation["metrics"][ok] = 10 / 11  # the gates file keeps 4 decimals: 0.9091 > 0.90909…
    session_copy.validation_file.write_text(json.dumps(validation))
    gates = {"tolerance": 0.05, "gates": {ok: round(10 / 11, 4), low: validation["metrics"][low] + 0.1}}
    (session_copy.evaluation_dir / "eval_gates.json").write_text(json.dumps(gates))
    html = write_report(session_copy, previous=None, read_traces=False).html.read_text()

    scorers = html[html.index('<section id="scorers">') :]

    def state(metric):
        row = scorers[scorers.index(f"<td><code>{metric.removesuffix('/mean')}</code>") :]
        return row[: row.index("</tr>")]

    assert "below gate" in state(low)
    assert "below gate" not in state(ok) and ">ran<" in state(ok).replace("\n", "")


def test_a_make_judge_shows_its_whole_prompt_folded_and_as_text(session_copy):
    """The instructions judge quotes the agent's system prompt: a reviewer reads what the judge is given,
    and a prompt holding markup stays text."""
    from trace2eval.demo.agent import SUPERVISOR_INSTRUCTIONS

    html = write_report(session_copy, previous=None).html.read_text()
    judge_row = html[html.index("<code>follows_instructions</code>") :].split("</tr>")[0]
    assert "<summary>its instructions (" in judge_row and SUPERVISOR_INSTRUCTIONS[:80] in judge_row

    specs = json.loads(session_copy.scorer_specs_file.read_text())
    judge = next(s for s in specs["scorers"] if s["name"] == "follows_instructions")
    judge["instructions"] = PAYLOAD + " Read {{ trace }}."
    session_copy.scorer_specs_file.write_text(json.dumps(specs))
    html = write_report(session_copy, previous=None).html.read_text()
    assert "<script" not in html.lower() and "&lt;script&gt;window.__pwned" in html
