"""`trace2eval monitor` against real `mlflow server` processes on 127.0.0.1 (job runner on)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlflow_server
from judge_server import JudgeServer

from trace2eval.generate.scorers import registerable
from trace2eval.sessions import monitor
from trace2eval.sessions.files import read_json, write_json

pytestmark = [pytest.mark.slow, pytest.mark.server]


# What a server needs to run judges on an AI Gateway endpoint that is a loopback HTTP server, and to
# score a trace as soon as it is logged (its default waits 300 s for a trace to complete).
GATEWAY_ENV = {
    "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
    monitor.TRACE_BUFFER_ENV: "0",
}
# The scheduler runs once a minute and each scoring job starts a fresh process: ~50 s on an idle
# machine, over 150 s on a loaded 2-core one.
ONLINE_WAIT_S = 240


def _server(folder: Path, custom_scorers: bool, job_execution: bool = True, gateway: bool = False):
    env = {
        **{k: v for k, v in os.environ.items() if k != monitor.CUSTOM_SCORERS_ENV},
        monitor.JOB_EXECUTION_ENV: "true" if job_execution else "false",
        **({monitor.CUSTOM_SCORERS_ENV: "true"} if custom_scorers else {}),
        **(GATEWAY_ENV if gateway else {}),
    }
    return mlflow_server.start(folder, env)


def _verdict(prompt: str) -> str:
    """The loopback judge's answer: decided by the prompt alone, both verdicts occur."""
    return "no" if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 == 0 else "yes"


def _suite_judges(folder: Path, model: str) -> dict:
    """The suite's own judges (evaluation/scorers.py), on the given model, by name."""
    spec = importlib.util.spec_from_file_location("suite_scorers", folder / "evaluation" / "scorers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {j.name: j for j in module.get_judge_scorers(model=model)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A validated session on the sample agent's traces, made by separate processes (as a user would)."""
    folder = tmp_path_factory.mktemp("generated")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    code = (
        "from trace2eval.env import apply_safe_mlflow_env; apply_safe_mlflow_env();"
        f"from trace2eval.demo.seed import seed_experiment; print(seed_experiment({uri!r}, n=24))"
    )
    seed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    experiment_id = seed.stdout.strip().splitlines()[-1]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            experiment_id,
            "--tracking-uri",
            uri,
            "-o",
            str(folder),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return Path(run.stdout.strip().splitlines()[-1])


def _suite_on(url: str, generated: Path, tmp_path: Path) -> Path:
    import mlflow

    experiment_id = mlflow.MlflowClient(url).create_experiment(f"monitored-{tmp_path.name}")
    folder = tmp_path / "session"
    shutil.copytree(generated, folder)
    config = read_json(folder / "state" / "config.json")
    config.update(tracking_uri=url, experiment_id=experiment_id)
    write_json(folder / "state" / "config.json", config)
    return folder


def test_server_without_custom_scorers_gets_a_clear_message(generated, tmp_path, cli, monkeypatch):
    monkeypatch.delenv(monitor.CUSTOM_SCORERS_ENV, raising=False)
    judge = JudgeServer(by_prompt=_verdict)
    proc, url = _server(tmp_path, custom_scorers=False, gateway=True)
    try:
        folder = _suite_on(url, generated, tmp_path)
        code, out, err = cli("monitor", folder, "--no-check")
        # With judges to run, the server still gets them; the code scorers are named as refused.
        model = mlflow_server.add_gateway_endpoint(url, api_base=judge.url)
        with_judges = cli("monitor", folder, "--judges", "--judge-model", model, "--no-check")
        running = {r.name for r in monitor.registered(monitor.resolve(folder)) if r.running}
    finally:
        mlflow_server.stop(proc)
        judge.close()
    assert code == 1, out + err
    assert f"refuses custom code scorers — start it with {monitor.CUSTOM_SCORERS_ENV}=true" in err
    assert "Traceback" not in err
    assert with_judges[0] == 0, with_judges
    specs = monitor.load_suite_specs(monitor.resolve(folder))
    code_names = [s.name for s in registerable(specs)[0]]
    assert with_judges[1].count(
        f"refuses custom code scorers (it would need {monitor.CUSTOM_SCORERS_ENV}=true)"
    ) == len(code_names)
    assert running and all(r[len(monitor.PREFIX) :] not in code_names for r in running)


def test_server_with_custom_scorers_registers_and_loads_them_back(generated, tmp_path, cli):
    proc, url = _server(tmp_path, custom_scorers=True)
    try:
        folder = _suite_on(url, generated, tmp_path)
        code, out, err = cli("monitor", folder, "--sample-rate", "0.5")
        target = monitor.resolve(folder)
        found = {r.name: r for r in monitor.registered(target)}
    finally:
        mlflow_server.stop(proc)
    assert code == 0, err
    names = [s.name for s in registerable(monitor.load_suite_specs(target))[0]]
    assert set(found) == {monitor.PREFIX + n for n in names}
    # Loaded back over HTTP in a fresh process, each says what the suite says on every row.
    assert f"identity: {len(names)} of {len(names)} registered code scorers say what the suite says" in out
    # MLflow's open-source server (3.17) starts only gateway:/ judges: the code scorers stay registered, not started.
    assert all(r.sample_rate is None for r in found.values())
    assert out.count(monitor.GATEWAY_ONLY) == len(names)


def test_server_runs_the_suites_judges_on_a_gateway_endpoint(generated, tmp_path, cli):
    """The open-source server's job runner scores newly logged traces with the suite's judges
    (through its AI Gateway to a loopback judge), and says what the suite's own judges say."""
    import mlflow

    from trace2eval.demo.agent import SampleAgent, sample_requests

    judge = JudgeServer(by_prompt=_verdict)
    proc, url = _server(tmp_path, custom_scorers=True, gateway=True)
    before = mlflow.get_tracking_uri()
    try:
        folder = _suite_on(url, generated, tmp_path)
        target = monitor.resolve(folder)
        # A judge model naming no endpoint is refused before anything is registered.
        code, out, err = cli("monitor", folder, "--judges", "--judge-model", "gateway:/missing", "--no-check")
        assert code == 1 and "names no AI Gateway endpoint" in err and "Traceback" not in err, out + err
        assert monitor.registered(target) == []

        model = mlflow_server.add_gateway_endpoint(url, api_base=judge.url)
        code, out, err = cli("monitor", folder, "--judges", "--judge-model", model, "--no-check")
        assert code == 0, out + err
        specs = monitor.load_suite_specs(target)
        code_names = [s.name for s in registerable(specs)[0]]
        online = [s.name for s in specs if not s.is_code and not monitor._needs_expectations(s)]
        assert online, "the suite has judges that can run on production traces"
        running = {r.name for r in monitor.registered(target) if r.running}
        assert running == {monitor.PREFIX + n for n in online}
        # The code scorers are registered but not started, each with the reason.
        assert out.count(monitor.GATEWAY_ONLY) == len(code_names) > 0
        assert monitor.TRACE_BUFFER_ENV in out

        # Production traffic after the start: the sample agent answers four new requests.
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment(experiment_id=target.experiment_id)
        agent = SampleAgent(mlflow, seed=11)
        for i, request in enumerate(sample_requests(4, seed=11)):
            agent.answer(request, time.time_ns() - (40 - i) * 1_000_000_000)
        mlflow.flush_trace_async_logging()
        ids = [t.info.trace_id for t in mlflow.search_traces(locations=[target.experiment_id], return_type="list")]
        assert len(ids) == 4

        wanted = {monitor.PREFIX + n for n in online}
        client = mlflow.MlflowClient(url)
        deadline = time.monotonic() + ONLINE_WAIT_S
        while True:  # one light request per poll: the server's single worker also serves the judges' calls
            infos = client.search_traces(locations=[target.experiment_id], include_spans=False)
            seen_by_id = {t.info.trace_id: {a.name: a for a in t.info.assessments if a.name in wanted} for t in infos}
            seen = [seen_by_id.get(i, {}) for i in ids]
            if all(set(s) == wanted for s in seen) or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert all(set(s) == wanted for s in seen), (
            f"after {ONLINE_WAIT_S} s the server had scored {sum(map(len, seen))} of {len(ids) * len(wanted)}: "
            + (tmp_path / "server.log").read_text()[-3000:]
        )
        server_calls = len(judge.calls)
        traces = [mlflow.get_trace(i) for i in ids]

        # The suite's own judges, run here on the same traces through the same endpoint, agree.
        suite = _suite_judges(folder, model)
        verdicts = {"yes": 0, "no": 0}
        for trace, assessments in zip(traces, seen):
            for name in online:
                on_server = assessments[monitor.PREFIX + name]
                assert on_server.source.source_type == "LLM_JUDGE" and on_server.error is None
                local = suite[name].run(trace=trace)
                assert (str(on_server.value), on_server.rationale) == (str(local.value), local.rationale), name
                verdicts[str(local.value)] += 1
        assert verdicts["yes"] and verdicts["no"], verdicts  # the comparison saw both verdicts
        assert server_calls >= len(ids) * len(online)  # the server's job called the judge for each (retries aside)
    finally:
        mlflow.set_tracking_uri(before)
        mlflow_server.stop(proc)
        judge.close()


def test_server_without_job_execution_gets_a_clear_message(generated, tmp_path, cli):
    judge = JudgeServer(by_prompt=_verdict)
    proc, url = _server(tmp_path, custom_scorers=True, job_execution=False, gateway=True)
    try:
        folder = _suite_on(url, generated, tmp_path)
        model = mlflow_server.add_gateway_endpoint(url, api_base=judge.url)
        code, out, err = cli("monitor", folder, "--judges", "--judge-model", model, "--no-check")
        registered = monitor.registered(monitor.resolve(folder))
    finally:
        mlflow_server.stop(proc)
        judge.close()
    assert code == 1, out + err
    assert "does not run jobs" in err and f"restart it with {monitor.JOB_EXECUTION_ENV}=true" in err
    assert "Traceback" not in err and registered == []
