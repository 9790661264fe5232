"""Flags shared by several commands, defined once, each with its TRACE2EVAL_* variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from trace2eval.config import DEFAULT_LLM_MODEL, DEFAULT_LLM_TRACE_EXPERIMENT, DEFAULT_MAX_TRACES, SessionConfig

ExperimentId = Annotated[
    str,
    typer.Option(
        "--experiment-id",
        "-e",
        envvar=["TRACE2EVAL_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID"],
        help="MLflow experiment whose traces to read.",
    ),
]
TrackingUri = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri",
        envvar=["TRACE2EVAL_TRACKING_URI", "MLFLOW_TRACKING_URI"],
        help="sqlite:///file.db, http://host:5000, or databricks.",
    ),
]
Out = Annotated[
    Path, typer.Option("--out", "-o", envvar="TRACE2EVAL_OUT", help="Folder that receives session folders.")
]
Llm = Annotated[str, typer.Option("--llm", envvar="TRACE2EVAL_LLM", help="none | databricks | anthropic")]
LlmModel = Annotated[
    str, typer.Option("--llm-model", envvar="TRACE2EVAL_LLM_MODEL", help="Serving endpoint or model name.")
]
JudgeModel = Annotated[
    Optional[str],
    typer.Option(
        "--judge-model",
        envvar="TRACE2EVAL_JUDGE_MODEL",
        help="Model for generated LLM judges, e.g. databricks:/databricks-claude-sonnet-4-5.",
    ),
]
MaxTraces = Annotated[
    int, typer.Option("--max-traces", envvar="TRACE2EVAL_MAX_TRACES", help="Read at most this many traces (0 = all).")
]
Filter = Annotated[
    Optional[str],
    typer.Option("--filter", envvar="TRACE2EVAL_FILTER", help="MLflow trace filter, e.g. \"tags.env = 'prod'\"."),
]
Since = Annotated[
    Optional[str],
    typer.Option("--since", envvar="TRACE2EVAL_SINCE", help="Only traces newer than 24h / 7d / an ISO date."),
]
Labels = Annotated[
    Optional[str],
    typer.Option(
        "--labels", envvar="TRACE2EVAL_LABELS", help="Name of a yes/no feedback on traces to measure scorers against."
    ),
]
Source = Annotated[
    str,
    typer.Option(
        "--source",
        envvar="TRACE2EVAL_SOURCE",
        help="Where to read traces: mlflow (the experiment), or "
        "uc:<catalog>.<schema>[.<table_prefix>] (Unity Catalog trace tables, with Spark).",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
RequireLlm = Annotated[
    bool, typer.Option("--require-llm", help="Fail when the LLM is unavailable instead of falling back.")
]
SuiteDir = Annotated[
    Optional[str],
    typer.Option(
        "--suite",
        envvar="TRACE2EVAL_SUITE",
        help="Living suite to grow (nightly mode): only traces past its watermark are read, "
        "new rows and scorers are added, edited files are kept. A folder or /Volumes/... path.",
    ),
]
FixAttempts = Annotated[
    int, typer.Option("--max-fix-attempts", envvar="TRACE2EVAL_MAX_FIX_ATTEMPTS", help="Validate/fix rounds.")
]

LlmMaxTurns = Annotated[
    int, typer.Option("--llm-max-turns", envvar="TRACE2EVAL_LLM_MAX_TURNS", help="Most model turns in one LLM session.")
]
LlmSessionTokens = Annotated[
    int,
    typer.Option(
        "--llm-session-tokens",
        envvar="TRACE2EVAL_LLM_SESSION_TOKENS",
        help="Token budget (input + output) of one LLM session.",
    ),
]
LlmRunTokens = Annotated[
    int,
    typer.Option(
        "--llm-run-tokens",
        envvar="TRACE2EVAL_LLM_RUN_TOKENS",
        help="Token budget (input + output) of all LLM sessions of a run.",
    ),
]
LlmTimeout = Annotated[
    float,
    typer.Option("--llm-timeout", envvar="TRACE2EVAL_LLM_TIMEOUT", help="Seconds to wait for one model response."),
]
LlmSessionSeconds = Annotated[
    int,
    typer.Option(
        "--llm-session-seconds",
        envvar="TRACE2EVAL_LLM_SESSION_SECONDS",
        help="Wall-time budget of one LLM session, retries included.",
    ),
]
LlmTraceExperiment = Annotated[
    str,
    typer.Option(
        "--llm-trace-experiment",
        envvar="TRACE2EVAL_LLM_TRACE_EXPERIMENT",
        help='Experiment that receives traces of trace2eval\'s own LLM calls ("" = off).',
    ),
]

_LLM_DEFAULTS = {
    name: SessionConfig.model_fields[name].default
    for name in ("llm_max_turns", "llm_session_tokens", "llm_run_tokens", "llm_timeout_s", "llm_session_seconds")
}
DEFAULTS = {
    "out": Path("sessions"),
    "llm": "none",
    "llm_model": DEFAULT_LLM_MODEL,
    "max_traces": DEFAULT_MAX_TRACES,
    "source": "mlflow",
    "llm_trace_experiment": DEFAULT_LLM_TRACE_EXPERIMENT,
    **_LLM_DEFAULTS,
}


def llm_settings(
    max_turns: int,
    session_tokens: int,
    run_tokens: int,
    timeout_s: float,
    session_seconds: int,
    trace_experiment: str | None,
) -> dict:
    """The llm_* settings of SessionConfig from their command-line flags."""
    return {
        "llm_max_turns": max_turns,
        "llm_session_tokens": session_tokens,
        "llm_run_tokens": run_tokens,
        "llm_timeout_s": timeout_s,
        "llm_session_seconds": session_seconds,
        "llm_trace_experiment": trace_experiment,
    }


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
