"""The production monitors' verdicts read back from a real store: counted per day, evaluations left out."""

from __future__ import annotations

from trace2eval.report import charts
from trace2eval.report.production import SOURCE_RUN_KEY, summary
from trace2eval.sessions.monitor import PREFIX

DAY_MS = 86_400_000


def _feedback(mlflow, trace_id, name, value, when_ms, metadata=None):
    from mlflow.entities import AssessmentSource, Feedback

    mlflow.log_assessment(
        trace_id=trace_id,
        assessment=Feedback(
            name=name,
            value=value,
            source=AssessmentSource(source_type="CODE", source_id=name),
            create_time_ms=when_ms,
            metadata=metadata,
        ),
    )


def test_monitor_verdicts_per_day_and_a_regression_called_out(store):
    mlflow = store.mlflow
    now = 1_767_225_600_000 + 3 * DAY_MS  # the factory's traces start on 2026-01-01
    ids = [store.add({"q": f"question {i}"}, f"answer {i}") for i in range(50)]
    for i, trace_id in enumerate(ids[:25]):  # yesterday: every monitored trace passed
        _feedback(mlflow, trace_id, PREFIX + "tool_failures", True, now - DAY_MS)
    for i, trace_id in enumerate(ids[25:]):  # today: 10 of 25 fail
        _feedback(mlflow, trace_id, PREFIX + "tool_failures", i >= 10, now)
        # Not production verdicts: an evaluation run's, and a scorer trace2eval did not register.
        _feedback(mlflow, trace_id, PREFIX + "tool_failures", False, now, {SOURCE_RUN_KEY: "run123"})
        _feedback(mlflow, trace_id, "hand_made", False, now)

    found = summary(store.uri, store.experiment_id, PREFIX, tolerance=0.05, now_ms=now)
    assert found["traces"] == 50
    by_day = found["scorers"]["tool_failures"]
    assert sorted(v for v in by_day.values()) == [[15, 25], [25, 25]]
    assert list(found["scorers"]) == ["tool_failures"]
    [move] = found["moved"]
    assert (move["scorer"], move["before"], move["after"], move["regressed"]) == ("tool_failures", 1.0, 0.6, True)
    assert (move["traces_before"], move["traces_after"]) == (25, 25)
    assert found["rows"][0]["scored"] == 50 and found["rows"][0]["latest_rate"] == 0.6

    # Within the tolerance, or on too few traces, nothing is called out.
    assert summary(store.uri, store.experiment_id, PREFIX, tolerance=0.5, now_ms=now)["moved"] == []

    chart = charts.monitor_trend_chart(found["scorers"])
    assert chart is not None and chart.png.startswith(b"\x89PNG") and "50 verdicts" in chart.caption
    assert charts.monitor_trend_chart({}) is None


def test_suite_page_calls_out_a_moved_monitor():
    from trace2eval.sessions.ownership import Manifest
    from trace2eval.sessions.suite import suite_page

    run = {
        "session": "s1",
        "published_at": "now",
        "new_traces": 3,
        "rows_added": 1,
        "rows_total": 9,
        "validation_status": "passed",
        "run_id": "r",
        "gate_status": "ok",
        "session_dir": "/x",
    }
    lines = ["## Production monitors", "", "- **tool_failures fell** from 100.0% to 60.0%", ""]
    page = suite_page("/suite", run, Manifest(), None, lines)
    assert "## Production monitors" in page and "tool_failures fell" in page
    assert "## Production monitors" not in suite_page("/suite", run, Manifest(), None)
