"""The report's pictures, drawn with matplotlib into PNG bytes.

Each function takes plain data and returns a `Chart` (or None when there is nothing to draw), so
the same pictures are embedded in report.html and written beside report.md. Figures are built
with the object API (no pyplot state), which keeps this safe to call from any thread or process.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

SEVERITY_COLORS = {"high": "#c0392b", "medium": "#e08e0b", "low": "#5b8c5a"}
BLUE, GREY, RED, INK = "#2e6f9e", "#9aa5b1", "#c0392b", "#1f2933"
WIDTH_IN = 9.2
DPI = 110


@dataclass(frozen=True)
class Chart:
    key: str  # file stem and anchor
    title: str
    caption: str  # what the picture shows, also its alt text
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def filename(self) -> str:
        return f"{self.key}.png"


def _label(text: Any, limit: int = 34) -> str:
    """Trace-derived text as a plain label: `$` would switch matplotlib into math mode."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=INK, labelsize=8.5)
    ax.grid(axis="x", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


# ---------------------------------------------------------------------------------------------


def latency_chart(
    durations_ms: Sequence[float] | None,
    statuses: Sequence[str] | None,
    summary: dict[str, Any],
    threshold_ms: float | None,
) -> Chart | None:
    """Histogram of trace latency (errors stacked in red) with p50/p95 and the outlier threshold."""
    if durations_ms:
        values = [max(float(v), 0.0) for v in durations_ms]
        errors = [v for v, s in zip(values, statuses or []) if s == "ERROR"]
        ok = [v for v, s in zip(values, statuses or ["OK"] * len(values)) if s != "ERROR"]
        scale = 1000.0 if max(values) >= 2000 else 1.0
        unit = "s" if scale == 1000.0 else "ms"
        fig = _figure(2.9)
        ax = fig.subplots()
        top = max(values) / scale
        bins = [top * i / 30 for i in range(31)] if top > 0 else 10
        ax.hist(
            [[v / scale for v in ok], [v / scale for v in errors]],
            bins=bins,
            stacked=True,
            color=[BLUE, RED],
            label=["OK", "ERROR"],
            edgecolor="white",
            linewidth=0.4,
        )
        marks = [("p50", summary.get("p50"), INK, "--"), ("p95", summary.get("p95"), INK, ":")]
        if threshold_ms:
            marks.append(("outlier threshold", threshold_ms, RED, "-"))
        for name, value, color, style in marks:
            if isinstance(value, (int, float)):
                ax.axvline(
                    value / scale, color=color, linestyle=style, linewidth=1.2, label=f"{name} {_seconds(float(value))}"
                )
        ax.set_xlabel(f"trace latency ({unit})", fontsize=9)
        ax.set_ylabel("traces", fontsize=9)
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _style(ax)
        caption = (
            f"Latency of {len(values)} traces: p50 {_seconds(float(summary.get('p50', 0) or 0))}, "
            f"p95 {_seconds(float(summary.get('p95', 0) or 0))}, max {_seconds(max(values))}"
            + (f"; {len(errors)} ended in ERROR" if errors else "")
        )
        return Chart("latency", "Latency distribution", caption, _png(fig))
    keys = [k for k in ("p50", "p90", "p95", "p99", "max") if isinstance(summary.get(k), (int, float))]
    if not keys:
        return None
    fig = _figure(2.4)
    ax = fig.subplots()
    values = [float(summary[k]) / 1000 for k in keys]
    ax.barh(keys[::-1], values[::-1], color=BLUE)
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.1f} s", va="center", fontsize=8, color=INK)
    ax.set_xlabel("latency (s)", fontsize=9)
    _style(ax)
    caption = "Latency percentiles (the per-trace distribution needs the tracking store: rerun `trace2eval report` where it is reachable)"
    return Chart("latency", "Latency distribution", caption, _png(fig))


def failures_chart(findings: Sequence[dict[str, Any]], total: int) -> Chart | None:
    """Traces flagged by each finding, ranked as in the findings table, colored by severity."""
    rows = [f for f in findings if (f.get("prevalence") or {}).get("traces")]
    if not rows:
        return None
    rows = rows[:14]
    fig = _figure(0.9 + 0.34 * len(rows))
    ax = fig.subplots()
    names = [_label(f.get("title") or f.get("id")) for f in rows][::-1]
    counts = [int(f["prevalence"]["traces"]) for f in rows][::-1]
    colors = [SEVERITY_COLORS.get(str(f.get("severity")), GREY) for f in rows][::-1]
    ax.barh(names, counts, color=colors)
    for y, (n, f) in enumerate(zip(counts, rows[::-1])):
        rate = (f.get("prevalence") or {}).get("rate")
        ax.text(n, y, f"  {n}" + (f" ({rate:.0%})" if isinstance(rate, (int, float)) else ""), va="center", fontsize=8)
    ax.set_xlim(0, max(counts) * 1.22)
    ax.set_xlabel(f"traces flagged (of {total})", fontsize=9)
    from matplotlib.patches import Patch

    present = [s for s in SEVERITY_COLORS if any(f.get("severity") == s for f in rows)]
    ax.legend(
        handles=[Patch(color=SEVERITY_COLORS[s], label=f"{s} severity") for s in present],
        fontsize=8,
        frameon=False,
        loc="lower right",
    )
    _style(ax)
    caption = "; ".join(f"{f.get('id')}: {f['prevalence']['traces']}" for f in rows[:6])
    return Chart("failures", "Failures by kind", f"Traces flagged per finding ({caption})", _png(fig))


def query_type_chart(query_types: Sequence[dict[str, Any]], findings: Sequence[dict[str, Any]]) -> Chart | None:
    """Volume per query type beside its error rate and the rate of its most common finding."""
    rows = [q for q in query_types if q.get("count")][:12]
    if not rows:
        return None
    titles = {f.get("id"): f.get("id") for f in findings}
    fig = _figure(1.0 + 0.36 * len(rows))
    ax_volume, ax_rate = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 1.25]})
    names = [_label(q.get("name"), 26) for q in rows][::-1]
    counts = [int(q["count"]) for q in rows][::-1]
    ax_volume.barh(names, counts, color=BLUE)
    for y, n in enumerate(counts):
        ax_volume.text(n, y, f" {n}", va="center", fontsize=8)
    ax_volume.set_xlim(0, max(counts) * 1.2)
    ax_volume.set_xlabel("traces", fontsize=9)
    ax_volume.set_title("volume", fontsize=9, color=INK)

    error_rates, top_rates, top_names = [], [], []
    for q in rows[::-1]:
        rate = q.get("failure_rate", q.get("error_rate"))
        error_rates.append(float(rate) * 100 if isinstance(rate, (int, float)) else 0.0)
        hits = {k: v for k, v in (q.get("findings") or {}).items() if isinstance(v, (int, float))}
        if hits and q.get("count"):
            fid, n = max(hits.items(), key=lambda kv: kv[1])
            top_rates.append(100.0 * n / q["count"])
            top_names.append(titles.get(fid, fid))
        else:
            top_rates.append(0.0)
            top_names.append("")
    ys = list(range(len(rows)))
    ax_rate.barh(
        [y + 0.18 for y in ys], top_rates, height=0.36, color=SEVERITY_COLORS["medium"], label="most common finding"
    )
    ax_rate.barh(
        [y - 0.18 for y in ys],
        error_rates,
        height=0.36,
        color=RED,
        label="failure rate" if any("failure_rate" in q for q in rows) else "error rate (status ERROR)",
    )
    for y, rate, name in zip(ys, top_rates, top_names):
        if name:
            ax_rate.text(rate, y + 0.18, f" {rate:.0f}% {_label(name, 22)}", va="center", fontsize=7)
    ax_rate.set_xlim(0, max(top_rates + error_rates + [10.0]) * 1.7)
    ax_rate.set_xlabel("% of the type's traces", fontsize=9)
    ax_rate.set_title("where it fails", fontsize=9, color=INK)
    ax_rate.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    _style(ax_volume)
    _style(ax_rate)
    busiest = rows[0]
    return Chart(
        "query_types",
        "Volume and failure rate per query type",
        f"{len(rows)} query types; the largest is {busiest.get('name')} with {busiest['count']} traces",
        _png(fig),
    )


def heatmap_chart(query_types: Sequence[dict[str, Any]], findings: Sequence[dict[str, Any]]) -> Chart | None:
    """Share of each query type's traces flagged by each finding."""
    types = [q for q in query_types if q.get("count")][:12]
    found = [f for f in findings if f.get("id")][:12]
    if len(types) < 2 or not found:
        return None
    matrix = []
    for q in types:
        hits = q.get("findings") or {}
        matrix.append([100.0 * float(hits.get(f["id"], 0) or 0) / q["count"] for f in found])
    if not any(any(row) for row in matrix):
        return None
    fig = _figure(1.2 + 0.34 * len(types))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="OrRd", aspect="auto", vmin=0, vmax=max(max(r) for r in matrix) or 1)
    ax.set_xticks(range(len(found)), [_label(f["id"], 22) for f in found], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(types)), [_label(q.get("name"), 26) for q in types], fontsize=8)
    peak = max(max(r) for r in matrix)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value:
                ax.text(
                    j,
                    i,
                    f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.6 * peak else INK,
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the type's traces")
    worst = max(
        ((matrix[i][j], types[i].get("name"), found[j]["id"]) for i in range(len(types)) for j in range(len(found)))
    )
    return Chart(
        "findings_by_query_type",
        "Findings by query type",
        f"Hot spot: {worst[0]:.0f}% of {worst[1]} traces show {worst[2]}",
        _png(fig),
    )


def scorer_chart(
    means: dict[str, float],
    gates: dict[str, float],
    previous: dict[str, float] | None = None,
    failing: set[str] | None = None,
) -> Chart | None:
    """Pass rate per scorer on the dataset, with its gate and the previous session's value; bars of
    metrics that fail their gate (after its tolerance) are red."""
    names = [n for n in sorted(means) if isinstance(means[n], (int, float)) and not math.isnan(means[n])]
    if not names:
        return None
    names.sort(key=lambda n: means[n])
    fig = _figure(0.9 + 0.32 * len(names))
    ax = fig.subplots()
    labels = [_label(n.removesuffix("/mean")) for n in names]
    values = [float(means[n]) for n in names]
    colors = [RED if n in (failing or set()) else BLUE for n in names]
    ax.barh(labels, values, color=colors)
    for y, v in enumerate(values):  # a value column right of the axis, clear of the markers
        ax.text(1.03, y, f"{v:.0%}", va="center", fontsize=8.5, color=INK)
    gate_ys = [(y, float(gates[n])) for y, n in enumerate(names) if isinstance(gates.get(n), (int, float))]
    if gate_ys:
        ax.scatter(
            [g for _, g in gate_ys], [y for y, _ in gate_ys], marker="|", s=260, color=INK, label="gate", zorder=3
        )
    prev = [
        (y, float(previous[n])) for y, n in enumerate(names) if previous and isinstance(previous.get(n), (int, float))
    ]
    if prev:
        ax.scatter(
            [p for _, p in prev],
            [y for y, _ in prev],
            marker="D",
            s=22,
            facecolors="none",
            edgecolors=SEVERITY_COLORS["medium"],
            label="previous session",
            zorder=4,
        )
    ax.set_xlim(0, 1.1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("rows passing", fontsize=9)
    if gate_ys or prev:
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    _style(ax)
    low = names[0].removesuffix("/mean")
    return Chart(
        "scorer_pass_rates",
        "Scorer pass rates",
        f"Share of dataset rows each scorer passes; lowest: {low} at {means[names[0]]:.0%}",
        _png(fig),
    )


def tools_chart(tool_usage: Sequence[dict[str, Any]]) -> Chart | None:
    """Calls per tool with the failed ones in red."""
    rows = [t for t in tool_usage if t.get("calls")][:15]
    if not rows:
        return None
    fig = _figure(0.9 + 0.3 * len(rows))
    ax = fig.subplots()
    names = [_label(t.get("tool"), 30) for t in rows][::-1]
    calls = [int(t["calls"]) for t in rows][::-1]
    failed = [int(t.get("failures") or 0) for t in rows][::-1]
    ax.barh(names, calls, color=BLUE, label="calls")
    ax.barh(names, failed, color=RED, label="failed")
    for y, (c, f) in enumerate(zip(calls, failed)):
        ax.text(c, y, f" {c}" + (f" ({f} failed)" if f else ""), va="center", fontsize=8)
    ax.set_xlim(0, max(calls) * 1.3)
    ax.set_xlabel("tool calls", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    _style(ax)
    worst = max(rows, key=lambda t: t.get("failures") or 0)
    caption = f"{len(rows)} most used tools" + (
        f"; most failures: {worst.get('tool')} ({worst.get('failures')})"
        if worst.get("failures")
        else "; no failed calls"
    )
    return Chart("tools", "Tool calls and failures", caption, _png(fig))


def volume_chart(timestamps_ms: Sequence[int], statuses: Sequence[str]) -> Chart | None:
    """Traces per hour, day or week (whichever gives a readable number of bars), errors stacked."""
    stamps = [t for t in timestamps_ms if t]
    if len(stamps) < 2 or max(stamps) == min(stamps):
        return None
    span_h = (max(stamps) - min(stamps)) / 3_600_000
    bucket_h, word = (1, "hour") if span_h <= 72 else (24, "day") if span_h <= 24 * 120 else (24 * 7, "week")
    size = bucket_h * 3_600_000
    start = min(stamps) // size * size
    ok: Counter[int] = Counter()
    bad: Counter[int] = Counter()
    for t, s in zip(timestamps_ms, statuses):
        if t:
            (bad if s == "ERROR" else ok)[(t - start) // size] += 1
    buckets = range(0, (max(stamps) - start) // size + 1)
    if len(buckets) < 2:
        return None
    from matplotlib import dates as mdates

    xs = [datetime.fromtimestamp((start + b * size) / 1000, tz=timezone.utc) for b in buckets]
    fig = _figure(2.5)
    ax = fig.subplots()
    width = bucket_h / 24 * 0.9
    ok_counts = [ok[b] for b in buckets]
    ax.bar(xs, ok_counts, width=width, color=BLUE, label="OK", align="edge")
    ax.bar(xs, [bad[b] for b in buckets], width=width, bottom=ok_counts, color=RED, label="ERROR", align="edge")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set_ylabel(f"traces per {word}", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    busiest = max(buckets, key=lambda b: ok[b] + bad[b])
    return Chart(
        "volume",
        "Traffic over time",
        f"{len(stamps)} traces over {span_h / 24:.1f} days (UTC), busiest {word}: "
        f"{xs[busiest]:%Y-%m-%d %H:%M} with {ok[busiest] + bad[busiest]}",
        _png(fig),
    )


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def agreement_chart(
    rows: Sequence[dict[str, Any]], base_rate: float | None, combined: dict[str, Any], label: str
) -> Chart | None:
    """Precision and recall of each code scorer against people's yes/no labels."""
    usable = [
        r for r in rows if isinstance(r.get("precision"), (int, float)) or isinstance(r.get("recall"), (int, float))
    ][:14]
    if not usable:
        return None
    entries = [("all kept scorers", combined.get("precision"), combined.get("recall"), True)] if combined else []
    entries += [
        (
            r["id"] + ("" if r.get("kept", True) else " (dropped)"),
            r.get("precision"),
            r.get("recall"),
            r.get("kept", True),
        )
        for r in usable
    ]
    entries = entries[::-1]
    fig = _figure(1.0 + 0.36 * len(entries))
    ax = fig.subplots()
    ys = list(range(len(entries)))
    precision = [float(p or 0) for _, p, _, _ in entries]
    recall = [float(r or 0) for _, _, r, _ in entries]
    ax.barh([y + 0.19 for y in ys], precision, height=0.38, color=BLUE, label="precision: flagged traces that were bad")
    ax.barh(
        [y - 0.19 for y in ys], recall, height=0.38, color=SEVERITY_COLORS["medium"], label="recall: bad traces flagged"
    )
    ax.set_yticks(ys, [_label(name, 30) for name, *_ in entries])
    for tick, (_, _, _, kept) in zip(ax.get_yticklabels(), entries):
        if not kept:
            tick.set_color(GREY)
    if isinstance(base_rate, (int, float)):
        ax.axvline(
            base_rate, color=RED, linestyle="--", linewidth=1.2, label=f"base rate: {base_rate:.0%} labelled bad"
        )
    ax.set_xlim(0, 1.05)
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    _style(ax)
    caption = (
        (
            f"Against '{label}': together the kept scorers flag {float(combined.get('recall') or 0):.0%} of the traces "
            f"people marked bad, at {float(combined.get('precision') or 0):.0%} precision"
        )
        if combined
        else f"Agreement of each scorer with '{label}'"
    )
    return Chart("label_agreement", "Scorers against the labels", caption, _png(fig))


def monitor_trend_chart(scorers: dict[str, dict[str, Sequence[int]]]) -> Chart | None:
    """Each production monitor's pass rate per day (UTC), from the verdicts it attached to traces."""
    series = {name: by_day for name, by_day in scorers.items() if by_day}
    days = sorted({d for by_day in series.values() for d in by_day})
    if not series or not days:
        return None
    fig = _figure(2.9)
    ax = fig.subplots()
    xs = [datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=timezone.utc) for d in days]
    for name, by_day in sorted(series.items()):
        points = [(x, by_day[d][0] / by_day[d][1]) for x, d in zip(xs, days) if d in by_day and by_day[d][1]]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", linewidth=1.4, label=_label(name))
    from matplotlib import dates as mdates

    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("pass rate", fontsize=9)
    ax.legend(fontsize=7.5, frameon=False, loc="lower left", ncol=2)
    _style(ax)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    total = sum(n for by_day in series.values() for _, n in by_day.values())
    return Chart(
        "monitor_trend",
        "Production monitors over time",
        f"pass rate per day of {len(series)} monitored scorers, {total} verdicts on production traces over "
        f"{len(days)} day(s) (UTC); evaluation runs' verdicts are not counted",
        _png(fig),
    )
