"""Production monitors: the suite's scorers registered on the experiment, run by MLflow on new traces.

`sync` brings the registered set in line with the suite: a scorer the suite has and the experiment
does not is registered and started, one whose code or sampling changed is updated, one the suite
dropped is stopped. Only scorers trace2eval registered are touched; they are the ones named
`trace2eval_<scorer>` (`PREFIX`). A scorer registered by hand keeps running as it was.

Code scorers are registered in their self-contained form (generate/scorers.py
`render_registerable`), then loaded back in a fresh process and run beside the suite's own
scorers on every dataset row (`monitor_identity.py`): one that does not say exactly what the suite
says is not started.

The platforms' limits are built in: Databricks runs at most 20 registered scorers per experiment
(the most severe findings first, then the most precise when labels measured them), registered
judges there need a `databricks:/...` model, a scorer that needs expectations cannot run on
production traces (they have none), and an open-source server registers code scorers only when it
was started with MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS=true. An open-source server (MLflow 3.17) runs
judges on its AI Gateway endpoints (`gateway:/NAME`) with its job runner, and no code scorer: the
endpoint and the job runner are checked before anything is started, so a monitor that could never
run is named, not silently registered.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trace2eval import ui
from trace2eval.config import real_uri, resolve_tracking_uri
from trace2eval.errors import Trace2EvalError
from trace2eval.generate.scorers import BUILTIN_JUDGES, ScorerSpec, registerable, render_registerable
from trace2eval.sessions.files import read_json
from trace2eval.state.versions import upgrade_specs
from trace2eval.validate.run import scrubbed_env

PREFIX = "trace2eval_"
DATABRICKS_MAX_SCORERS = 20
CUSTOM_SCORERS_ENV = "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
# The server scores a trace only once it is this old (its own setting, 300 s unless set), on a
# once-a-minute schedule; a conversation once it has been idle for the session buffer.
TRACE_BUFFER_ENV = "MLFLOW_ONLINE_SCORING_DEFAULT_TRACE_COMPLETION_BUFFER_SECONDS"
SESSION_BUFFER_ENV = "MLFLOW_ONLINE_SCORING_DEFAULT_SESSION_COMPLETION_BUFFER_SECONDS"
GATEWAY_PREFIX = "gateway:/"
IDENTITY_TIMEOUT_S = 900
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
# MLflow's open-source tracking store (3.17) starts only scorers whose model is an AI Gateway
# endpoint: a code scorer registers there (and loads back with get_scorer) but is refused at start().
GATEWAY_ONLY = (
    "registered, but this open-source tracking server starts only judges on gateway:/ models, so it does not "
    "run code scorers on new traces (Databricks does)"
)


@dataclass(frozen=True)
class Target:
    """Where the suite is and which experiment it watches."""

    evaluation_dir: Path
    state_dir: Path
    experiment_id: str
    tracking_uri: str

    @property
    def on_databricks(self) -> bool:
        return self.tracking_uri.strip().lower().startswith("databricks")

    @property
    def on_server(self) -> bool:
        return self.tracking_uri.strip().lower().startswith(("http://", "https://"))


@dataclass
class Registered:
    name: str  # the registered name (PREFIX + scorer name for trace2eval's)
    version: int | None
    sample_rate: float | None
    filter_string: str | None
    serialized: dict[str, Any] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        return self.name.startswith(PREFIX)

    @property
    def running(self) -> bool:
        return bool(self.sample_rate)


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # name, reason
    not_started: list[dict[str, str]] = field(default_factory=list)  # registered, the server would not start it
    identity: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the user should know about where they run

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- where the suite is --------------------------------------------------------------------------


def resolve(path: str | Path, tracking_uri: str | None = None) -> Target:
    """A session folder (eval_tasks.json) or a living suite folder (SUITE.md beside evaluation/)."""
    folder = Path(path).expanduser().resolve()
    evaluation, state = folder / "evaluation", folder / "state"
    if not (state / "scorer_specs.json").exists() or not (evaluation / "scorers.py").exists():
        raise Trace2EvalError(
            f"{folder} is neither a trace2eval session nor a living suite (no state/scorer_specs.json "
            "and evaluation/scorers.py)",
            "pass the session folder `trace2eval run` printed, or the suite folder (--suite)",
        )
    experiment_id, uri = None, None
    if (folder / "eval_tasks.json").exists() and (state / "config.json").exists():
        config = read_json(state / "config.json")
        experiment_id, uri = config.get("experiment_id"), config.get("tracking_uri")
    else:  # a suite: the values run_eval.py was generated with
        experiment_id, uri = _script_defaults(evaluation / "run_eval.py")
    if tracking_uri:
        uri = resolve_tracking_uri(tracking_uri)
    if not experiment_id:
        raise Trace2EvalError(f"{folder} does not say which experiment it watches", "regenerate the suite")
    if not uri or "***" in uri:
        raise Trace2EvalError(
            f"{folder} does not keep its tracking URI (it held a password)", "pass it with --tracking-uri"
        )
    return Target(evaluation, state, str(experiment_id), real_uri(uri))


def _script_defaults(script: Path) -> tuple[str | None, str | None]:
    if not script.exists():
        return None, None
    found: dict[str, Any] = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("DEFAULT_EXPERIMENT_ID", "DEFAULT_TRACKING_URI"):
                with contextlib.suppress(ValueError):
                    found[node.targets[0].id] = ast.literal_eval(node.value)
    return found.get("DEFAULT_EXPERIMENT_ID") or None, found.get("DEFAULT_TRACKING_URI") or None


def load_suite_specs(target: Target) -> list[ScorerSpec]:
    data = upgrade_specs(read_json(target.state_dir / "scorer_specs.json"))
    return [ScorerSpec.from_dict(s) for s in data["scorers"] if s.get("implementation") != "custom_code"]


def _findings(target: Target) -> dict[str, dict[str, Any]]:
    path = target.state_dir / "analysis.json"
    if not path.exists():
        return {}
    analysis = read_json(path)
    # A guard ranks by its severity like a finding; with no measured precision, after the findings beside it.
    return {
        f["id"]: f
        for section in ("guards", "findings")
        for f in analysis.get(section, [])
        if isinstance(f, dict) and "id" in f
    }


# -- what should run -----------------------------------------------------------------------------


def _needs_expectations(spec: ScorerSpec) -> bool:
    return (
        "expectations" in (spec.instructions or "")
        or spec.implementation == "builtin_judge"
        and spec.name == "correctness"
    )


def choose(
    specs: list[ScorerSpec],
    target: Target,
    judges: bool,
    judge_model: str | None,
    hand_registered: int = 0,
) -> tuple[list[ScorerSpec], list[dict[str, str]]]:
    """The scorers to monitor with, and each one left out with its reason."""
    code, skipped = registerable(specs)
    chosen = list(code)
    for spec in specs:
        if spec.is_code:
            if spec.implementation not in ("code", "rule"):
                skipped.append(
                    {"name": spec.name, "reason": f"{spec.implementation} scorers have no registerable form"}
                )
            continue
        if _needs_expectations(spec):
            skipped.append({"name": spec.name, "reason": "needs expectations, which production traces do not have"})
        elif not judges:
            skipped.append({"name": spec.name, "reason": "an LLM judge: pass --judges to monitor with judges too"})
        elif not judge_model:
            skipped.append({"name": spec.name, "reason": "an LLM judge and no judge model: pass --judge-model"})
        elif target.on_databricks and not judge_model.startswith("databricks"):
            skipped.append(
                {
                    "name": spec.name,
                    "reason": f"Databricks runs registered judges on databricks:/ models only, not {judge_model}",
                }
            )
        elif not target.on_databricks and not judge_model.startswith(GATEWAY_PREFIX):
            skipped.append(
                {
                    "name": spec.name,
                    "reason": f"an open-source tracking server runs registered judges on its gateway:/ endpoints only, not {judge_model}",
                }
            )
        else:
            chosen.append(spec)
    if target.on_databricks and len(chosen) + hand_registered > DATABRICKS_MAX_SCORERS:
        room = max(0, DATABRICKS_MAX_SCORERS - hand_registered)
        findings = _findings(target)

        def rank(spec: ScorerSpec) -> tuple[int, float, int]:
            finding = findings.get(spec.finding or spec.name, {})
            precision = (finding.get("agreement") or {}).get("precision")
            return (
                SEVERITY_RANK.get(finding.get("severity", "low"), 2),
                -(precision if isinstance(precision, (int, float)) else 0.0),
                0 if spec.is_code else 1,  # code scorers cost nothing per trace
            )

        ordered = sorted(chosen, key=rank)
        for spec in ordered[room:]:
            skipped.append(
                {
                    "name": spec.name,
                    "reason": f"Databricks runs at most {DATABRICKS_MAX_SCORERS} registered scorers per experiment "
                    f"({hand_registered} registered by hand); ranked below the {room} kept by severity and precision",
                }
            )
        kept = {s.name for s in ordered[:room]}
        chosen = [s for s in chosen if s.name in kept]
    return chosen, skipped


# -- the registered set --------------------------------------------------------------------------


@contextlib.contextmanager
def _trusting_own_code() -> Iterator[None]:
    """MLflow rebuilds a registered `@scorer` from its source after start()/update(); outside
    Databricks it does so only in a process that says it trusts the code (the flag below). This
    process only ever rebuilds the scorers it registered itself."""
    before = os.environ.get(CUSTOM_SCORERS_ENV)
    os.environ[CUSTOM_SCORERS_ENV] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CUSTOM_SCORERS_ENV, None)
        else:
            os.environ[CUSTOM_SCORERS_ENV] = before


@contextlib.contextmanager
def _tracking(target: Target) -> Iterator[None]:
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(target.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def registered(target: Target) -> list[Registered]:
    """Every scorer registered on the experiment, read without rebuilding any of them (a hand-made
    scorer's code is never executed here)."""
    with _tracking(target):
        try:
            if target.on_databricks:
                from mlflow.genai.scorers import list_scorers

                return [
                    Registered(s.name, s.scorer_version, s.sample_rate, s.filter_string, {})
                    for s in list_scorers(experiment_id=target.experiment_id)
                ]
            from mlflow.tracking._tracking_service.utils import _get_store

            store = _get_store(target.tracking_uri)
            versions = store.list_scorers(target.experiment_id)
            configs = (
                {c.scorer_id: c for c in store.get_online_scoring_configs([v.scorer_id for v in versions])}
                if versions
                else {}
            )
        except Exception as exc:
            raise _store_error(target, exc) from None
    found = []
    for v in versions:
        config = configs.get(v.scorer_id)
        try:  # a dataclass parsed from JSON: nothing of the scorer runs
            serialized = dataclasses.asdict(v.serialized_scorer)
        except Exception:
            serialized = {}
        found.append(
            Registered(
                v.scorer_name,
                v.scorer_version,
                config.sample_rate if config else None,
                config.filter_string if config else None,
                serialized,
            )
        )
    return found


def _refuses_custom_scorers(exc: Exception) -> bool:
    text = str(exc)
    return CUSTOM_SCORERS_ENV in text or "Custom scorer registration" in text


def _store_error(target: Target, exc: Exception) -> Trace2EvalError:
    text = str(exc)
    if _refuses_custom_scorers(exc):
        return Trace2EvalError(
            f"the tracking server at {target.tracking_uri} refuses custom code scorers",
            f"start it with {CUSTOM_SCORERS_ENV}=true in its environment (the server then runs the suite's "
            "scorer code), or monitor with the judges only",
        )
    return Trace2EvalError(
        f"cannot manage registered scorers of experiment {target.experiment_id} at {target.tracking_uri}: "
        f"{type(exc).__name__}: {text[:300]}",
        "check the tracking URI and that the server runs MLflow 3 with its job runner",
    )


def check_gateway_endpoint(target: Target, judge_model: str) -> None:
    """The `gateway:/NAME` endpoint must exist where the judges will run: a judge on a missing one
    is accepted at start() and then fails on every trace, out of sight, in the server's job runner."""
    from mlflow.tracking._tracking_service.utils import _get_store

    name = judge_model[len(GATEWAY_PREFIX) :].strip("/")
    store = _get_store(target.tracking_uri)
    try:
        store.get_gateway_endpoint(name=name)
        return
    except Exception as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")) and "not found" not in str(exc):
            raise Trace2EvalError(
                f"cannot read the AI Gateway endpoints at {target.tracking_uri}: {type(exc).__name__}: {str(exc)[:300]}",
                "judges on an open-source server need its AI Gateway (MLflow 3.17 or newer); or monitor without --judges",
            ) from None
    try:
        known = sorted(e.name for e in store.list_gateway_endpoints())
    except Exception:
        known = []
    raise Trace2EvalError(
        f"the judge model {judge_model} names no AI Gateway endpoint at {target.tracking_uri}"
        + (f" (its endpoints: {', '.join(known)})" if known else " (it has none)"),
        "create the endpoint in the server's AI Gateway (UI: AI Gateway, or MlflowClient's gateway API), "
        "then pass it as --judge-model gateway:/NAME",
    )


def check_job_execution(target: Target) -> None:
    """A server started without its job runner accepts registered scorers and never runs them. Ask
    its job API to submit a scoring job without parameters: a server that runs jobs rejects the
    missing parameters (nothing is submitted), one that does not says so first."""
    from mlflow.tracking._tracking_service.utils import _get_store
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            _get_store(target.tracking_uri).get_host_creds(),
            "/ajax-api/3.0/jobs/",
            "POST",
            json={"job_name": "invoke_scorer", "params": {}},
            max_retries=0,
            timeout=30,
            raise_on_status=False,
        )
        text = response.text
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
    if "job execution feature is not enabled" in text or "Requirement not satisfied" in text:
        raise Trace2EvalError(
            f"the tracking server at {target.tracking_uri} does not run jobs, so it would never run a registered "
            f"scorer ({text[:200].strip()})",
            f"restart it with {JOB_EXECUTION_ENV}=true and a database backend store (--backend-store-uri sqlite:///... "
            "or postgresql://...), then run trace2eval monitor again",
        )


def _fingerprint(serialized: dict[str, Any]) -> str:
    """What decides whether a registered scorer is the one we would register now."""
    keep = {k: v for k, v in serialized.items() if k not in ("mlflow_version", "serialization_version")}
    return json.dumps(keep, sort_keys=True, default=str)


@contextlib.contextmanager
def _scorer_objects(specs: list[ScorerSpec], judge_model: str | None) -> Iterator[dict[str, Any]]:
    """MLflow scorer objects for `specs`, by scorer name. Code scorers come from the rendered
    registerable module, imported from a temporary file: MLflow serializes a `@scorer` by reading
    its source file, so the file must exist while they are registered."""
    code = [s for s in specs if s.is_code]
    objects: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="trace2eval-monitors-") as tmp:
        if code:
            path = Path(tmp) / "trace2eval_monitors.py"
            path.write_text(render_registerable(code, PREFIX), encoding="utf-8")
            module_spec = importlib.util.spec_from_file_location("trace2eval_monitors", path)
            assert module_spec and module_spec.loader
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            for fn_scorer, spec in zip(module.get_monitor_scorers(), code):
                objects[spec.name] = fn_scorer
        for spec in specs:
            if not spec.is_code:
                objects[spec.name] = _judge(spec, judge_model)
        yield objects


def _judge(spec: ScorerSpec, model: str | None) -> Any:
    import mlflow.genai.scorers as builtin
    from mlflow.genai.scorers import Guidelines

    name = PREFIX + spec.name
    if spec.implementation == "builtin_judge":  # incl. the conversation judges, which the server runs per session
        return getattr(builtin, BUILTIN_JUDGES[spec.name])(name=name, model=model)
    if spec.implementation == "guidelines":
        return Guidelines(name=name, guidelines=spec.guidelines, model=model)
    from mlflow.genai.judges import make_judge

    return make_judge(name=name, instructions=spec.instructions or "", model=model, feedback_value_type=bool)


def sync(
    target: Target,
    sample_rate: float,
    filter_string: str | None = None,
    judges: bool = False,
    judge_model: str | None = None,
    check_identity: bool = True,
) -> SyncResult:
    """Register, update, start and stop trace2eval's scorers so they match the suite."""
    if not 0 < sample_rate <= 1:
        raise Trace2EvalError(f"sample rate {sample_rate} is not in (0, 1]", "pass e.g. --sample-rate 0.1")
    from mlflow.genai.scorers import ScorerSamplingConfig

    specs = load_suite_specs(target)
    before = {r.name: r for r in registered(target)}
    hand = sum(1 for r in before.values() if not r.ours)
    chosen, skipped = choose(specs, target, judges, judge_model, hand_registered=hand)
    result = SyncResult(skipped=skipped)
    chosen_judges = [s for s in chosen if not s.is_code]
    if chosen_judges and not target.on_databricks and judge_model:
        check_gateway_endpoint(target, judge_model)
        if target.on_server:
            check_job_execution(target)
            result.notes.append(
                f"the server scores a new trace on its once-a-minute schedule once the trace is older than its "
                f"{TRACE_BUFFER_ENV} (300 s unless set), a conversation once idle for {SESSION_BUFFER_ENV} (300 s)"
            )
        else:
            result.notes.append(
                f"{target.tracking_uri} is a local store: no job runner scores its traces; serve it with "
                f"`mlflow server --backend-store-uri {target.tracking_uri}` ({JOB_EXECUTION_ENV}=true) and pass "
                "--tracking-uri http://HOST:PORT to monitor there"
            )
    started: dict[str, Any] = {}
    refused: set[str] = set()  # code scorers a server without custom-scorer support would not take
    with _tracking(target), _trusting_own_code(), _scorer_objects(chosen, judge_model) as objects:
        for spec in chosen:
            obj = objects[spec.name]
            name = PREFIX + spec.name
            old = before.get(name)
            try:
                wanted = obj.model_dump()
                if old is None or (not target.on_databricks and _fingerprint(old.serialized) != _fingerprint(wanted)):
                    obj = obj.register(experiment_id=target.experiment_id)
                    (result.added if old is None else result.updated).append(spec.name)
                elif old.sample_rate == sample_rate and (old.filter_string or None) == (filter_string or None):
                    result.unchanged.append(spec.name)
                    continue
                else:
                    result.resampled.append(spec.name)
                started[spec.name] = obj
            except Exception as exc:
                # With judges to run, a server that refuses code scorers still gets the judges.
                if spec.is_code and chosen_judges and _refuses_custom_scorers(exc):
                    refused.add(spec.name)
                    result.skipped.append(
                        {
                            "name": spec.name,
                            "reason": f"this server refuses custom code scorers (it would need {CUSTOM_SCORERS_ENV}=true)",
                        }
                    )
                    continue
                raise _store_error(target, exc) from None
        differ: set[str] = set()
        code_names = [s.name for s in chosen if s.is_code and s.name not in refused]
        if check_identity and code_names:
            result.identity = identity(target, code_names)
            differ = set(result.identity.get("differ", {})) | set(result.identity.get("problems", {}))
        for spec in chosen:
            if spec.name in differ:
                result.skipped.append(
                    {"name": spec.name, "reason": "its registered form does not say what the suite's scorer says"}
                )
        not_started: set[str] = set()
        try:
            for name, obj in started.items():
                if name in differ:
                    continue
                try:
                    if name in result.added or name in result.updated:
                        obj.start(
                            experiment_id=target.experiment_id,
                            sampling_config=ScorerSamplingConfig(sample_rate=sample_rate, filter_string=filter_string),
                        )
                    else:
                        _set_sampling(target, PREFIX + name, sample_rate, filter_string)
                except Exception as exc:
                    if "gateway model" not in str(exc):
                        raise
                    not_started.add(name)
                    result.not_started.append({"name": name, "reason": GATEWAY_ONLY})
            wanted_names = {PREFIX + s.name for s in chosen if s.name not in differ | not_started | refused}
            for name, old in before.items():
                if old.ours and old.running and name not in wanted_names:
                    _set_sampling(target, name, 0.0, None)
                    result.stopped.append(name[len(PREFIX) :])
        except Exception as exc:
            raise _store_error(target, exc) from None
    return result


def _set_sampling(target: Target, name: str, sample_rate: float, filter_string: str | None) -> None:
    """Change how a registered scorer samples without rebuilding its code (0 stops it)."""
    from mlflow.genai.scorers import ScorerSamplingConfig, get_scorer

    if target.on_databricks:
        scorer = get_scorer(name=name, experiment_id=target.experiment_id)
        if sample_rate:
            scorer.update(
                experiment_id=target.experiment_id,
                sampling_config=ScorerSamplingConfig(sample_rate=sample_rate, filter_string=filter_string),
            )
        else:
            scorer.stop(experiment_id=target.experiment_id)
        return
    from mlflow.tracking._tracking_service.utils import _get_store

    _get_store(target.tracking_uri).upsert_online_scoring_config(
        experiment_id=target.experiment_id, scorer_name=name, sample_rate=sample_rate, filter_string=filter_string
    )


def stop_all(target: Target) -> list[str]:
    """Stop every running scorer trace2eval registered; the others keep running."""
    stopped = []
    for r in registered(target):
        if r.ours and r.running:
            with _tracking(target), _trusting_own_code():
                try:
                    _set_sampling(target, r.name, 0.0, None)
                except Exception as exc:
                    raise _store_error(target, exc) from None
            stopped.append(r.name)
    return stopped


def identity(target: Target, names: list[str], all_traces: bool = False) -> dict[str, Any]:
    """Load the registered code scorers back in a fresh process and run them beside the suite's own
    on every dataset row, or every trace of the experiment (monitor_identity.py): `differ` names
    the ones that disagree."""
    script = Path(__file__).with_name("monitor_identity.py")
    env = {**scrubbed_env(os.environ, None, target.tracking_uri), "MLFLOW_TRACKING_URI": target.tracking_uri}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    cmd = [sys.executable, str(script), *(["--all-traces"] if all_traces else [])]
    cmd += [str(target.evaluation_dir), target.experiment_id, PREFIX, *names]
    with ui.activity("Checking the registered scorers against the suite's", unit="rows"):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=IDENTITY_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return {"problems": {n: f"the check did not finish in {IDENTITY_TIMEOUT_S} s" for n in names}}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"problems": {n: f"the check failed: {tail[0][:300]}" for n in names}}
    return json.loads(lines[-1])
