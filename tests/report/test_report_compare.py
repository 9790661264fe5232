"""What changed since the previous session: found beside this one, compared from state files."""

from __future__ import annotations

import json

from sessioncopy import copy_session
from trace2eval.report import write_report
from trace2eval.report.compare import compare, find_previous


def later_copy(session, store_folder, into, name, created_at, edit):
    copy = copy_session(session, store_folder, into, name=name)
    plan = json.loads(copy.tasks_file.read_text())
    plan["created_at"] = created_at
    copy.tasks_file.write_text(json.dumps(plan))
    analysis, validation = json.loads(copy.analysis_file.read_text()), copy.validation().model_dump()
    edit(analysis, validation)
    copy.analysis_file.write_text(json.dumps(analysis))
    copy.validation_file.write_text(json.dumps(validation))
    return copy


def test_changes_since_the_previous_session(demo_session, demo_store, tmp_path):
    first = copy_session(demo_session, demo_store["folder"], tmp_path, name="2030-01-01_000000")
    plan = json.loads(first.tasks_file.read_text())
    plan["created_at"] = "2030-01-01T00:00:00+00:00"
    first.tasks_file.write_text(json.dumps(plan))
    gone, grown = (f.model_dump() for f in first.analysis().findings[:2])
    metric = sorted(first.validation().model_dump()["metrics"])[0]

    def edit(analysis, validation):
        analysis["findings"] = [f for f in analysis["findings"] if f["id"] != gone["id"]]
        for f in analysis["findings"]:
            if f["id"] == grown["id"]:
                f["prevalence"]["rate"] = round(f["prevalence"]["rate"] + 0.2, 3)
        analysis["findings"].append(
            {
                "id": "brand_new",
                "title": "Something new",
                "severity": "high",
                "prevalence": {"traces": 4, "rate": 0.1},
                "evidence": ["tr-x"],
            }
        )
        validation["metrics"][metric] = validation["metrics"][metric] - 0.25

    second = later_copy(
        demo_session, demo_store["folder"], tmp_path, "2030-01-02_000000", "2030-01-02T00:00:00+00:00", edit
    )
    # A third folder of another experiment, and a newer one, are not "previous".
    other = later_copy(
        demo_session,
        demo_store["folder"],
        tmp_path,
        "2030-01-01_120000",
        "2030-01-01T12:00:00+00:00",
        lambda a, v: None,
    )
    plan = json.loads(other.tasks_file.read_text())
    plan["experiment_id"] = "999"
    other.tasks_file.write_text(json.dumps(plan))
    later_copy(
        demo_session,
        demo_store["folder"],
        tmp_path,
        "2030-01-03_000000",
        "2030-01-03T00:00:00+00:00",
        lambda a, v: None,
    )
    (tmp_path / "sessions" / "not-a-session").mkdir()

    previous = find_previous(second)
    assert previous is not None and previous.id == first.id
    assert find_previous(first) is None

    changes = compare(second, previous)
    assert [f["id"] for f in changes.new_findings] == ["brand_new"]
    assert [f["id"] for f in changes.resolved_findings] == [gone["id"]]
    moved = {c.name: c for c in changes.finding_changes}
    assert moved[grown["id"]].better is False and abs(moved[grown["id"]].delta - 0.2) < 1e-6
    metric_change = {c.name: c for c in changes.metric_changes}[metric]
    assert metric_change.better is False and abs(metric_change.delta + 0.25) < 1e-9
    assert "1 new finding(s), 1 resolved" in changes.headline()

    files = write_report(second, read_traces=False)
    html = files.html.read_text()
    assert f"What changed since {first.id}" in html and "Something new" in html
    assert "-25.0 pp" in html and "delta-worse" in html
    assert f"What changed since {first.id}" in files.markdown.read_text()
    # The previous pass rates are what the scorer picture marks beside today's.
    assert changes.previous_metrics[metric] == first.validation().model_dump()["metrics"][metric]


def test_first_session_has_no_change_section(session_copy):
    files = write_report(session_copy, read_traces=False)
    assert "What changed since" not in files.html.read_text()
