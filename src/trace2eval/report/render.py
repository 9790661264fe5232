"""Render a session's report: report.html (self-contained, pictures inline) and report.md
(pictures in report_files/), both from jinja2 templates over the same context."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from trace2eval.printable import printable
from trace2eval.report import charts as draw
from trace2eval.report.compare import Change, Changes, compare, find_previous
from trace2eval.report.context import ReportContext, build_context, fmt_ms, normalized, read_state
from trace2eval.report.points import fetch_points, load_cached
from trace2eval.sessions.files import write_json, write_text
from trace2eval.sessions.session import Session

HTML_NAME = "report.html"
MD_NAME = "report.md"
IMAGES_DIR = "report_files"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    images: list[Path]
    charts: list[str]  # keys of the pictures drawn


# -- template filters ------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`\[\]|<>])")


def md_text(value: Any) -> str:
    """Untrusted text as inert Markdown: one line, no HTML, no links, no table breaks, no control characters."""
    text = printable(" ".join(str("" if value is None else value).split()))
    text = text.replace("&", "&amp;")
    return _MD_SPECIAL.sub(lambda m: {"<": "&lt;", ">": "&gt;"}.get(m.group(1), "\\" + m.group(1)), text)


_PIPE = re.compile(r"(\\*)\|")


def md_code(value: Any, in_table: bool = True) -> str:
    """Untrusted text as one Markdown code span that no character of it can close.

    Backslash escapes do not work inside a code span, so a backtick in the text would end it:
    the span is fenced with one more backtick than the longest run in the text (CommonMark), and
    padded with a space when the text starts or ends with a backtick. Inside a table, GFM splits
    cells on `|` before parsing spans: each pipe gets an odd number of backslashes before it.
    """
    text = printable(" ".join(str("" if value is None else value).split()))
    if not text:
        return "–"
    if in_table:
        text = _PIPE.sub(lambda m: m.group(1) + ("\\" if len(m.group(1)) % 2 == 0 else "\\\\") + "|", text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _visible(value: Any) -> Any:
    """Every value a template prints: control and bidi characters shown as escapes (see printable)."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(printable(str(value)))
    return printable(value) if isinstance(value, str) else value


def pct(value: Any, digits: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "–"
    return f"{value:.{digits}%}"


def show(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "%":
        return pct(value, 1)
    if unit == "ms":
        return fmt_ms(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def delta(change: Change) -> str:
    if change.delta is None:
        return "" if change.before == change.now else f"{change.before} → {change.now}"
    d = change.delta
    if abs(d) < 1e-12:
        return "="
    if change.unit == "%":
        return f"{d * 100:+.1f} pp"
    if change.unit == "ms":
        return ("+" if d > 0 else "−") + fmt_ms(abs(d))
    return f"{d:+,.0f}" if float(d).is_integer() else f"{d:+,.3g}"


def tone(better: bool | None) -> str:
    return "" if better is None else "delta-better" if better else "delta-worse"


@lru_cache(maxsize=2)
def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trace2eval.report", "templates"),
        undefined=jinja2.ChainableUndefined,  # state files may lack any key; missing shows as empty
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_visible,
    )
    env.filters.update(md=md_text, code=md_code, pct=pct, show=show, delta=delta, tone=tone)
    return env


# -- pictures ----------------------------------------------------------------------------------


def _numeric(items: Any, *path: str) -> list[dict[str, Any]]:
    """Entries of a state-file list whose number at `path` is really a number (others are skipped)."""
    out = []
    for item in items if isinstance(items, list) else []:
        value: Any = item
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(item, dict) and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(item)
    return out


def build_charts(analysis: dict[str, Any], points, ctx: ReportContext) -> list[draw.Chart]:
    """Every picture the data allows, in the order the report shows them."""
    findings = _numeric(analysis.get("findings"), "prevalence", "traces")
    query_types = _numeric(analysis.get("query_types"), "count")
    for q in query_types:  # finding hits per type feed arithmetic: keep only numbers
        q["findings"] = (
            {k: v for k, v in (q.get("findings") or {}).items() if isinstance(v, (int, float))}
            if isinstance(q.get("findings"), dict)
            else {}
        )
    summary = analysis.get("trace_summary") if isinstance(analysis.get("trace_summary"), dict) else {}
    latency = summary.get("latency_ms") if isinstance(summary.get("latency_ms"), dict) else {}
    threshold = next(
        (
            f["params"]["max_ms"]
            for f in findings
            if isinstance(f.get("params"), dict) and isinstance(f["params"].get("max_ms"), (int, float))
        ),
        None,
    )
    order = {f["id"]: i for i, f in enumerate(ctx.findings)}
    ranked = sorted((f for f in findings if f.get("id") in order), key=lambda f: order[f["id"]])
    means = {f"{s['name']}/mean": s["pass_rate"] for s in ctx.scorers["rows"] if s["pass_rate"] is not None}
    gates = (ctx.gates or {}).get("gates", {})
    previous = ctx.changes.previous_metrics if ctx.changes else None
    total = summary.get("total_analyzed") if isinstance(summary.get("total_analyzed"), int) else 0
    drawn = [
        draw.failures_chart(ranked, total),
        draw.scorer_chart(
            means, gates, previous, {e["metric"] for e in (ctx.gates or {}).get("entries", []) if e.get("ok") is False}
        ),
        draw.latency_chart(
            points.durations_ms if points else None, points.statuses if points else None, latency, threshold
        ),
        draw.volume_chart(points.timestamps_ms, points.statuses) if points else None,
        draw.tools_chart(_numeric(analysis.get("tool_usage"), "calls")),
        draw.query_type_chart(query_types, findings),
        draw.heatmap_chart(query_types, findings),
        draw.agreement_chart(
            ctx.labels["rows"],
            ctx.labels.get("base_rate"),
            ctx.labels.get("combined") or {},
            str(ctx.labels.get("label")),
        )
        if ctx.labels
        else None,
    ]
    return [c for c in drawn if c is not None]


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomic like every other session write: a reader never sees half a picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the report --------------------------------------------------------------------------------


PRODUCTION_FILE = "production_verdicts.json"
DEFAULT_TOLERANCE = 0.05  # run_eval.py's GATE_TOLERANCE, when eval_gates.json says none


def _production(session: Session, ctx) -> dict[str, Any] | None:
    """The production monitors' verdicts on the experiment (trace2eval monitor), also kept in
    state/production_verdicts.json for SUITE.md; None when none were found or the store cannot be read."""
    from trace2eval.report.production import summary
    from trace2eval.sessions.monitor import PREFIX

    try:
        config = session.config()
        gates = read_state(session.evaluation_dir / "eval_gates.json")
        tolerance = gates.get("tolerance") if isinstance(gates, dict) else None
        found = summary(
            config.tracking_uri,
            config.experiment_id,
            PREFIX,
            float(tolerance) if isinstance(tolerance, (int, float)) else DEFAULT_TOLERANCE,
        )
    except Exception as exc:
        ctx.notes.append(f"The production monitors' verdicts could not be read: {type(exc).__name__}: {exc}"[:300])
        return None
    if not found["scorers"]:
        return None
    write_json(session.state_dir / PRODUCTION_FILE, found)
    return found


def write_report(
    session: Session, ui_url: str | None = None, previous: Session | None | str = "auto", read_traces: bool = True
) -> ReportFiles:
    """Write report.html, report.md and their pictures into the session folder.

    previous: "auto" finds the previous session of the same experiment beside this one; None
    compares with nothing. read_traces=False never touches the tracking store (cached points only).
    """
    analysis = normalized(read_state(session.analysis_file)) if session.analysis_file.exists() else {}
    if previous == "auto":
        previous = find_previous(session)
    changes: Changes | None = compare(session, previous) if isinstance(previous, Session) else None
    ctx = build_context(session, changes=changes, ui_url=ui_url)
    points = None
    if analysis:
        points = fetch_points(session, analysis) if read_traces else load_cached(session)
    ctx.charts = build_charts(analysis, points, ctx) if analysis else []
    if read_traces and analysis:  # no analysis: the store was never read (it may not even exist)
        ctx.production = _production(session, ctx)
        trend = draw.monitor_trend_chart(ctx.production["scorers"]) if ctx.production else None
        if trend is not None:
            ctx.charts.append(trend)
    if points is not None and points.experiment_name:
        ctx.meta["experiment_name"] = points.experiment_name

    images_dir = session.dir / IMAGES_DIR
    written = []
    for chart in ctx.charts:
        target = images_dir / chart.filename
        _write_bytes(target, chart.png)
        written.append(target)
    if images_dir.exists():  # pictures a previous render drew but this one could not
        for stale in images_dir.glob("*.png"):
            if stale not in written:
                stale.unlink(missing_ok=True)

    html = _env(True).get_template("report.html.j2").render(ctx=ctx)
    markdown = _env(False).get_template("report.md.j2").render(ctx=ctx, images_dir=IMAGES_DIR)
    write_text(session.dir / HTML_NAME, html)
    write_text(session.dir / MD_NAME, markdown)
    return ReportFiles(session.dir / HTML_NAME, session.dir / MD_NAME, written, [c.key for c in ctx.charts])
