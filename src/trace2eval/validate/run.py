"""Run `run_eval.py` in a subprocess with a timeout and collect what it reported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_TAIL = 4000

# What run_eval.py needs from the parent's environment, and nothing else: it runs generated code
# (and, through the judges, model output about untrusted traces), so the generator's own tokens,
# cloud keys and CI secrets must not reach it.
PASS_ALWAYS = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    # Reaching a judge or a tracking server through a corporate proxy or a private CA.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
PASS_PREFIXES = ("LC_", "MLFLOW_")  # MLflow's settings, and its tracking-server credentials
# The trace2eval settings run_eval.py and scorers.py read.
PASS_TRACE2EVAL = ("TRACE2EVAL_JUDGE_MODEL", "TRACE2EVAL_JUDGE_TIMEOUT")
# A judge model `<provider>:/<name>` gets its provider's variables only; any other provider gets
# `<PROVIDER>_*`.
PROVIDER_PREFIXES = {
    "databricks": ("DATABRICKS_",),
    "endpoints": ("DATABRICKS_",),
    "openai": ("OPENAI_",),
    "azure": ("AZURE_",),
    "anthropic": ("ANTHROPIC_",),
    "bedrock": ("AWS_",),
    "sagemaker": ("AWS_",),
    "gemini": ("GEMINI_", "GOOGLE_"),
    "vertex_ai": ("VERTEX_", "GOOGLE_"),
}


@dataclass
class EvalRun:
    exit_code: int | None
    timed_out: bool
    seconds: float
    stdout_tail: str
    stderr_tail: str
    results: dict[str, Any] = field(default_factory=dict)


# MLflow's evaluate draws a tqdm bar on stderr ("Evaluating:  40%|####  | 16/40 [...]").
_ROW_PROGRESS = re.compile(r"Evaluating:.*?\|\s*(\d+)/(\d+)")

ProgressCallback = Callable[[int, int], None]


def run_eval_script(
    evaluation_dir: Path,
    results_path: Path,
    timeout_s: int,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
    judge_model: str | None = None,
    tracking_uri: str | None = None,
) -> EvalRun:
    """`python run_eval.py` from its own folder, as a user would run it, in a scrubbed environment:
    only what Python, MLflow and the judge model's provider need (see scrubbed_env); `env` adds to it.

    on_progress(done, total) is called as the evaluation's own progress bar advances.
    """
    results_path.unlink(missing_ok=True)
    cmd = [sys.executable, "run_eval.py", "--results-json", str(results_path), *(extra_args or [])]
    child_env = {**scrubbed_env(os.environ, judge_model, tracking_uri), **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=evaluation_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out_chunks, None), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err_chunks, on_progress), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code, timed_out = proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code, timed_out = None, True
    for reader in readers:
        reader.join(timeout=10)
    out = b"".join(out_chunks).decode(errors="replace")
    err = b"".join(err_chunks).decode(errors="replace")
    results: dict[str, Any] = {}
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            results = {}
    return EvalRun(code, timed_out, round(time.monotonic() - start, 2), out[-OUTPUT_TAIL:], err[-OUTPUT_TAIL:], results)


def provider_of(model_or_uri: str | None) -> str:
    """`databricks` for `databricks:/endpoint`, `databricks://profile` or `databricks-uc`; '' for none."""
    text = (model_or_uri or "").strip().lower()
    if text.startswith("databricks"):
        return "databricks"
    return text.split(":", 1)[0] if ":" in text else ""


def scrubbed_env(
    parent: Mapping[str, str], judge_model: str | None = None, tracking_uri: str | None = None
) -> dict[str, str]:
    """The part of `parent` that run_eval.py may see.

    Python's and the locale's basics, MLflow's settings (MLFLOW_*: the tracking store and its
    credentials), the trace2eval settings the script reads, and credentials only for the judge
    model's provider (DATABRICKS_* for `databricks:/...`, OPENAI_* for `openai:/...`, ...) and for a
    Databricks tracking store. Everything else (cloud keys, CI tokens, the generator's own LLM
    key when the judges use another provider) stays out.
    """
    prefixes = list(PASS_PREFIXES)
    judge_provider = provider_of(judge_model)
    if judge_provider:
        prefixes += PROVIDER_PREFIXES.get(judge_provider, (judge_provider.upper().replace("-", "_") + "_",))
    if provider_of(tracking_uri) == "databricks":
        prefixes.append("DATABRICKS_")
    keep = set(PASS_ALWAYS) | set(PASS_TRACE2EVAL)
    return {k: v for k, v in parent.items() if k in keep or k.startswith(tuple(prefixes))}


def _drain(stream, chunks: list[bytes], on_progress: ProgressCallback | None) -> None:
    """Read a child's stream to the end (so it never blocks on a full pipe), reporting progress."""
    pending = ""
    for chunk in iter(lambda: stream.read1(65536), b""):
        chunks.append(chunk)
        if on_progress is None:
            continue
        pending += chunk.decode(errors="replace")
        *complete, pending = re.split(r"[\r\n]", pending)
        for line in complete:
            if match := _ROW_PROGRESS.search(line):
                try:
                    on_progress(int(match.group(1)), int(match.group(2)))
                except Exception:
                    on_progress = None  # a broken progress display must not break validation
    stream.close()


# -- validation's own assessments -------------------------------------------------------------
# evaluate() logs each scorer's verdict as an assessment on the trace a row came from: the
# production trace. Left alone, every validation adds one per scorer to each source trace (five
# runs leave five of each). A validation run is tagged; after it, the assessments earlier tagged
# runs left on the traces it evaluated are deleted, so each trace keeps exactly one per scorer: the
# latest validation's. Any assessment that carries a source run (`SOURCE_RUN_KEY`) came from an
# evaluation, not from production monitoring, and is never counted as a production verdict.

VALIDATION_TAG = "trace2eval.validation"
SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"


def settle_validation_assessments(tracking_uri: str, experiment_id: str, run_id: str) -> dict[str, int]:
    """Tag `run_id` as a trace2eval validation and delete what earlier validations left on its traces.

    Returns how many traces were looked at and how many assessments were deleted. Assessments of
    any other run (a person's own `python run_eval.py`, another tool) and people's feedback stay.
    """
    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    client = MlflowClient(tracking_uri=tracking_uri)
    tracing = TracingClient(tracking_uri=tracking_uri)
    client.set_tag(run_id, VALIDATION_TAG, "true")
    is_validation: dict[str, bool] = {run_id: True}

    def validation_run(source: str) -> bool:
        if source not in is_validation:
            try:
                is_validation[source] = client.get_run(source).data.tags.get(VALIDATION_TAG) == "true"
            except Exception:  # a deleted run: not known to be ours, so its assessments stay
                is_validation[source] = False
        return is_validation[source]

    traces = deleted = 0
    token = None
    while True:
        page = client.search_traces(
            locations=[experiment_id], run_id=run_id, include_spans=False, max_results=200, page_token=token
        )
        for trace in page:
            traces += 1
            for assessment in trace.info.assessments or []:
                source = (assessment.metadata or {}).get(SOURCE_RUN_KEY)
                if source and source != run_id and validation_run(source):
                    tracing.delete_assessment(trace.info.trace_id, assessment.assessment_id)
                    deleted += 1
        token = page.token
        if not token:
            break
    return {"traces": traces, "deleted": deleted}
