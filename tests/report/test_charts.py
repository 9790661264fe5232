"""Each picture draws from plain data, decodes as a real PNG with content, and declines empty data."""

from __future__ import annotations

import io

import pytest

from trace2eval.report import charts

FINDINGS = [
    {
        "id": "tool_failures",
        "title": "Failed tool calls",
        "severity": "high",
        "prevalence": {"traces": 12, "rate": 0.12},
    },
    {
        "id": "slow_traces",
        "title": "Latency outliers",
        "severity": "low",
        "prevalence": {"traces": 5, "rate": 0.05},
        "params": {"max_ms": 9000},
    },
]
QUERY_TYPES = [
    {"name": "refund_order", "count": 60, "error_rate": 0.05, "findings": {"tool_failures": 9, "slow_traces": 1}},
    {"name": "$x$ \\frac{weird}", "count": 40, "error_rate": 0.0, "findings": {"slow_traces": 4}},
]


def pixels(chart):
    from matplotlib.image import imread

    assert chart.png.startswith(b"\x89PNG\r\n\x1a\n")
    return imread(io.BytesIO(chart.png), format="png")


def assert_has_content(chart):
    image = pixels(chart)
    assert image.shape[0] > 150 and image.shape[1] > 500
    assert image.std() > 0.05, f"{chart.key} is blank"
    assert chart.caption and chart.data_uri.startswith("data:image/png;base64,")


def test_every_chart_draws_real_pictures():
    drawn = [
        charts.latency_chart(
            [100.0 * i for i in range(1, 200)], ["OK"] * 190 + ["ERROR"] * 9, {"p50": 10_000, "p95": 19_000}, 18_000
        ),
        charts.failures_chart(FINDINGS, 100),
        charts.query_type_chart(QUERY_TYPES, FINDINGS),
        charts.heatmap_chart(QUERY_TYPES, FINDINGS),
        charts.scorer_chart(
            {"tool_failures/mean": 0.7, "slow_traces/mean": 0.95},
            {"tool_failures/mean": 0.8},
            {"tool_failures/mean": 0.9},
        ),
        charts.tools_chart(
            [{"tool": "lookup", "calls": 50, "failures": 7}, {"tool": "refund", "calls": 9, "failures": 0}]
        ),
        charts.volume_chart([1_700_000_000_000 + i * 3_600_000 for i in range(48)], ["OK"] * 40 + ["ERROR"] * 8),
    ]
    assert [c.key for c in drawn] == [
        "latency",
        "failures",
        "query_types",
        "findings_by_query_type",
        "scorer_pass_rates",
        "tools",
        "volume",
    ]
    for chart in drawn:
        assert_has_content(chart)


def test_captions_state_the_numbers():
    assert (
        "p50 10.0 s"
        in charts.latency_chart([10_000.0, 12_000.0], ["OK", "ERROR"], {"p50": 10_000, "p95": 12_000}, None).caption
    )
    assert "lowest: a at 20%" in charts.scorer_chart({"a/mean": 0.2, "b/mean": 0.9}, {}).caption
    assert "most failures: lookup (7)" in charts.tools_chart([{"tool": "lookup", "calls": 50, "failures": 7}]).caption
    heat = charts.heatmap_chart(QUERY_TYPES, FINDINGS)
    assert "15% of refund_order traces show tool_failures" in heat.caption


def test_latency_falls_back_to_percentiles_without_points():
    chart = charts.latency_chart(None, None, {"p50": 1000, "p90": 2000, "p95": 3000, "max": 9000}, None)
    assert_has_content(chart)
    assert "percentiles" in chart.caption


@pytest.mark.parametrize(
    "call",
    [
        lambda: charts.latency_chart([], [], {}, None),
        lambda: charts.failures_chart([], 0),
        lambda: charts.query_type_chart([], []),
        lambda: charts.heatmap_chart(QUERY_TYPES[:1], FINDINGS),  # one type: nothing to compare
        lambda: charts.heatmap_chart(QUERY_TYPES, []),
        lambda: charts.scorer_chart({"a/mean": float("nan")}, {}),
        lambda: charts.tools_chart([]),
        lambda: charts.volume_chart([5, 5], ["OK", "OK"]),
    ],
)
def test_no_picture_without_data(call):
    assert call() is None


def test_trace_text_in_labels_is_never_math():
    assert charts._label("costs $5 and $6") == r"costs \$5 and \$6"
    assert len(charts._label("x" * 100, 20)) == 20
