"""What the production monitors said: their pass rates per scorer and day, read back from the traces.

`trace2eval monitor` registers the suite's scorers as `trace2eval_<scorer>`; MLflow's job runner
attaches their verdicts to new production traces as feedback assessments with no source run. An
assessment that carries a source run (`mlflow.assessment.sourceRunId`) came from an evaluation
(trace2eval's own validation, or anyone's `run_eval.py`) and is never counted here.

`moved` compares the newest day with the days before it: a scorer whose pass rate fell (or rose)
by more than the gate's tolerance, on enough traces on both sides, is called out.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"
DAY_MS = 86_400_000
MIN_TRACES = 20  # on each side of a comparison: fewer and a 5-point move is noise
MAX_TRACES = 20_000  # newest first: a report reads at most this many traces' verdicts


def verdict(value: Any) -> bool | None:
    """A pass/fail feedback value as a bool (True, "yes", "true"), None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "no", "false"):
        return value.strip().lower() in ("yes", "true")
    return None


def read_verdicts(
    tracking_uri: str, experiment_id: str, prefix: str, days: int = 14, now_ms: int | None = None
) -> dict[str, Any]:
    """Monitor verdicts on traces of the last `days` days: {scorer: {day: [passed, scored]}}."""
    from mlflow import MlflowClient

    now_ms = now_ms or int(time.time() * 1000)
    since = now_ms - days * DAY_MS
    client = MlflowClient(tracking_uri=tracking_uri)
    scorers: dict[str, dict[str, list[int]]] = {}
    token, traces = None, 0
    while True:
        page = client.search_traces(
            locations=[experiment_id],
            filter_string=f"attributes.timestamp_ms > {since}",
            include_spans=False,
            max_results=500,
            order_by=["timestamp_ms DESC"],
            page_token=token,
        )
        for trace in page:
            traces += 1
            for assessment in trace.info.assessments or []:
                name = assessment.name or ""
                if not name.startswith(prefix) or (assessment.metadata or {}).get(SOURCE_RUN_KEY):
                    continue
                feedback = getattr(assessment, "feedback", None)
                passed = verdict(getattr(feedback, "value", None)) if feedback is not None else None
                if passed is None:
                    continue  # an error, or not a pass/fail value
                stamp = assessment.create_time_ms or trace.info.timestamp_ms
                day = datetime.fromtimestamp(stamp / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
                counts = scorers.setdefault(name[len(prefix) :], {}).setdefault(day, [0, 0])
                counts[0] += passed
                counts[1] += 1
        token = page.token
        if not token or traces >= MAX_TRACES:
            break
    return {"days": days, "read_at_ms": now_ms, "traces": traces, "scorers": scorers}


def moved(verdicts: dict[str, Any], tolerance: float, min_traces: int = MIN_TRACES) -> list[dict[str, Any]]:
    """Scorers whose newest day's pass rate moved more than `tolerance` from the days before it."""
    out = []
    for name, by_day in sorted((verdicts.get("scorers") or {}).items()):
        days = sorted(by_day)
        if len(days) < 2:
            continue
        passed_new, n_new = by_day[days[-1]]
        passed_old = sum(by_day[d][0] for d in days[:-1])
        n_old = sum(by_day[d][1] for d in days[:-1])
        if n_new < min_traces or n_old < min_traces:
            continue
        before, after = passed_old / n_old, passed_new / n_new
        if abs(after - before) > tolerance:
            out.append(
                {
                    "scorer": name,
                    "day": days[-1],
                    "before": round(before, 4),
                    "after": round(after, 4),
                    "traces_before": n_old,
                    "traces_after": n_new,
                    "regressed": after < before,
                }
            )
    return out


def summary(
    tracking_uri: str, experiment_id: str, prefix: str, tolerance: float, days: int = 14, now_ms: int | None = None
) -> dict[str, Any]:
    """The verdicts, the scorers that moved beyond `tolerance`, and per scorer its overall rate."""
    verdicts = read_verdicts(tracking_uri, experiment_id, prefix, days, now_ms)
    rows = []
    for name, by_day in sorted(verdicts["scorers"].items()):
        passed = sum(p for p, _ in by_day.values())
        scored = sum(n for _, n in by_day.values())
        latest = max(by_day)
        rows.append(
            {
                "scorer": name,
                "scored": scored,
                "pass_rate": passed / scored if scored else None,
                "latest_day": latest,
                "latest_rate": by_day[latest][0] / by_day[latest][1] if by_day[latest][1] else None,
            }
        )
    return {**verdicts, "tolerance": tolerance, "rows": rows, "moved": moved(verdicts, tolerance)}
