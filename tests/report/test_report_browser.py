"""The report in a real browser (headless Chromium): every picture decodes, nothing from a trace runs."""

from __future__ import annotations

import io
import json
import re

import pytest

import browser
from trace2eval.report import write_report

pytestmark = pytest.mark.browser


def probe(dom: str) -> dict:
    match = re.search(r'id="t2e-probe" data-result="([^"]*)"', dom)
    assert match, f"the probe never ran; DOM starts {dom[:300]!r}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_renders_in_chromium_with_every_picture(demo_session, tmp_path):
    page = demo_session.dir / "report.html"
    result = probe(browser.probe_dom(page, tmp_path, tmp_path / "profile"))
    images = result["images"]
    assert len(images) >= 4
    broken = [i for i in images if not i["complete"] or i["width"] < 300 or i["height"] < 100]
    assert not broken, broken
    assert result["scripts"] == 1  # only the probe itself

    shot = browser.screenshot(page, tmp_path / "report.png", tmp_path / "profile-shot")
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(shot.read_bytes()), format="png")
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 0.05  # a rendered page, not a blank one
    # Colored chart pixels (bars are saturated blue/red/orange) prove the images were painted.
    saturated = (pixels[..., :3].max(axis=2) - pixels[..., :3].min(axis=2)) > 0.35
    assert saturated.mean() > 0.002


def test_trace_text_cannot_run_script_in_the_report(session_copy, tmp_path):
    payload = '<script>window.__pwned="script"</script><img src=x onerror="window.__pwned=\'img\'">'
    analysis = json.loads(session_copy.analysis_file.read_text())
    analysis["agent"]["description"] = payload
    analysis["findings"][0]["examples"] = [payload]
    analysis["query_types"][0]["examples"] = [payload]
    session_copy.analysis_file.write_text(json.dumps(analysis))
    files = write_report(session_copy, previous=None, read_traces=False)
    # Without the page's Content-Security-Policy: escaping alone must keep the payload inert.
    result = probe(browser.probe_dom(files.html, tmp_path, tmp_path / "profile"))
    assert result["pwned"] is None
    assert result["scripts"] == 1
    assert all(i["width"] > 0 for i in result["images"])  # no broken <img> smuggled in
    # With it (as a person opens the file), not even the probe may run.
    dom = browser.probe_dom(files.html, tmp_path, tmp_path / "profile-csp", keep_csp=True)
    assert "t2e-probe" not in dom.split("</script>")[-1]
    assert "&lt;script&gt;window.__pwned" in dom


@pytest.mark.slow
def test_hostile_production_traces_stay_text_in_the_report(store, tmp_path):
    """Script in real trace requests, answers, tool names and errors, through a whole run."""
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    evil = '<script>window.__pwned="req"</script>'
    for i in range(8):
        store.add(
            f"order question {i} {evil}",
            f"answer {i} <img src=x onerror=\"window.__pwned='ans'\">",
            tools=[
                {
                    "name": "lookup<script>window.__pwned='tool'</script>",
                    "args": {"q": evil},
                    "error": i % 3 == 0,
                    "output": {"error": f"failed {evil}"},
                }
            ],
        )
    store.add(evil, None, status="ERROR", exception=("Boom<script>", evil))
    config = SessionConfig.from_inputs(store.experiment_id, store.uri)
    session = runner.create_session(config, tmp_path / "sessions")
    runner.run_all(session)
    html = (session.dir / "report.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # the text is there, as text
    result = probe(browser.probe_dom(session.dir / "report.html", tmp_path, tmp_path / "profile"))
    assert result["pwned"] is None and result["scripts"] == 1
    assert len(result["images"]) >= 4 and all(i["width"] > 0 for i in result["images"])
