"""The CLI in-process: exit codes and the exact `Error:` messages users see."""

import json
import socket
import subprocess
from pathlib import Path

import pytest
from environment import missing

from trace2eval.sessions.session import Session


def test_no_args_shows_help(cli):
    code, out, err = cli()
    assert "run" in out + err and "demo" in out + err


def test_unknown_experiment_names_the_id(cli, store, tmp_path):
    code, out, err = cli("run", "--experiment-id", "999", "--tracking-uri", store.uri, "--out", tmp_path / "s")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("Error: experiment 999 does not exist")


def test_missing_sqlite_store_is_not_created(cli, tmp_path):
    db = tmp_path / "nope.db"
    code, out, err = cli("run", "-e", "1", "--tracking-uri", f"sqlite:///{db}", "--out", tmp_path / "s")
    assert code == 1 and "no MLflow tracking store" in err
    assert not db.exists()


def test_unreachable_server_fails_fast(cli, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    code, out, err = cli("run", "-e", "1", "--tracking-uri", f"http://127.0.0.1:{port}", "--out", tmp_path / "s")
    assert code == 1 and "cannot reach the MLflow tracking server" in err


def test_empty_experiment_is_a_clear_error(cli, store, tmp_path):
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "s")
    assert code == 1
    assert f"Error: experiment {store.experiment_id} has no traces" in err
    session = Session.open(out.strip().splitlines()[-1]) if out.strip() else None
    assert session is None or session.plan().task("initializer").status == "failed"


def test_filter_that_matches_nothing(cli, store, tmp_path):
    store.add("hi", "hello")
    code, out, err = cli(
        "run",
        "-e",
        store.experiment_id,
        "--tracking-uri",
        store.uri,
        "--out",
        tmp_path / "s",
        "--filter",
        "tags.env = 'nowhere'",
    )
    assert code == 1 and "matching" in err and "tags.env" in err


def test_bad_filter_syntax(cli, store, tmp_path):
    store.add("hi", "hello")
    code, out, err = cli(
        "run",
        "-e",
        store.experiment_id,
        "--tracking-uri",
        store.uri,
        "--out",
        tmp_path / "s",
        "--filter",
        "attributes.state = 'OK'",
    )
    assert code == 1 and "Error: MLflow rejected the trace search" in err


def test_unwritable_output_folder(cli, store, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", blocker / "sub")
    assert code == 1 and "Error: cannot write to output folder" in err


def test_bad_since(cli, store, tmp_path):
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--since", "yesterdayish")
    assert code == 1 and "cannot read --since" in err


def test_task_out_of_order(cli, store, tmp_path):
    store.add("hi", "hello")
    session_dir = tmp_path / "s" / "one"
    code, out, err = cli(
        "task", "scorers", "--session", session_dir, "-e", store.experiment_id, "--tracking-uri", store.uri
    )
    assert code == 1 and "not a trace2eval session" in err
    code, out, err = cli(
        "task", "initializer", "--session", session_dir, "-e", store.experiment_id, "--tracking-uri", store.uri
    )
    assert code == 0 and out.strip().splitlines()[-1] == str(session_dir.resolve())
    code, out, err = cli("task", "script", "--session", session_dir)
    assert code == 1
    assert "Error: task 'script' needs 'dataset' to be completed first (it is pending)" in err
    assert "trace2eval task dataset --session" in err


def test_status_and_resume_of_finished_session(cli, demo_session):
    code, out, err = cli("status", demo_session.dir)
    assert code == 0 and "initializer" in out and "completed" in out and "Findings" in out
    code, out, err = cli("resume", demo_session.dir)
    assert code == 0 and out.strip().splitlines()[-1] == str(demo_session.dir)
    assert "already finished" in err
    plan = json.loads(demo_session.tasks_file.read_text())
    assert all(t["attempts"] <= 1 for t in plan["tasks"])


def test_locked_session_refuses_second_run(cli, demo_session):
    from trace2eval.sessions.lock import SessionLock

    with SessionLock(demo_session.dir):
        code, out, err = cli("task", "validate", "--session", demo_session.dir, "--force")
    assert code == 1 and "is in use by pid" in err


def test_version_prints_the_package_version(cli):
    from importlib.metadata import version

    code, out, err = cli("--version")
    assert code == 0 and out.strip() == f"trace2eval {version('trace2eval')}"


@pytest.fixture
def small_disk(tmp_path):
    """A real file system the test can fill or make read-only: a tmpfs of its own (needs root)."""
    mounted = []

    def mount(name: str, options: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_read_only_output_folder_is_a_clear_error(cli, store, small_disk):
    store.add("hi", "hello")
    read_only = small_disk("ro", "size=1m,ro")
    code, out, err = cli("run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", read_only / "s")
    assert code == 1 and "Traceback" not in err
    assert "Error: cannot write to output folder" in err and "Read-only file system" in err


def test_full_disk_is_a_clear_error(cli, demo_store, small_disk):
    full = small_disk("full", "size=64k")  # room for the session's first files, not for its dataset
    code, out, err = cli(
        "run", "-e", demo_store["experiment_id"], "--tracking-uri", demo_store["uri"], "--out", full / "s"
    )
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"Error: cannot write {full}/s/") and "No space left on device" in last
    assert "pick a folder on another one (--out)" in last


def test_full_disk_when_not_root_is_simulated_with_dev_full(cli, tmp_path):
    """Without mounts: an OSError ENOSPC from a real write (to /dev/full) gets the same message."""
    from trace2eval.cli.main import _disk_error

    if not Path("/dev/full").exists():
        missing("no /dev/full", "the disk-full test needs Linux's /dev/full")
    with pytest.raises(OSError) as info:
        with open("/dev/full", "wb") as handle:
            handle.write(b"x" * 100)
            handle.flush()
    assert _disk_error(info.value).startswith("cannot write: No space left on device — free some space")


def test_job_run_local_on_a_missing_store_fails_once_and_says_how(cli, tmp_path):
    root = Path(__file__).resolve().parent.parent
    code, out, err = cli(
        "job",
        "run-local",
        "--bundle-root",
        root,
        "--runs-dir",
        tmp_path / "runs",
        "--var",
        "experiment_id=1",
        "--var",
        f"volume_path={tmp_path / 'vol'}",
        "--param",
        f"tracking_uri=sqlite:///{tmp_path / 'none.db'}",
    )
    assert code == 1 and "Traceback" not in err and "retrying" not in err
    assert err.strip().splitlines()[-1].startswith("Error: job parameter tracking_uri=sqlite:///")
    assert "no MLflow tracking store" in err and "trace2eval demo" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "none.db").exists()


@pytest.mark.slow
def test_demo_writes_only_into_its_output_folder(tmp_path):
    """MLflow's default artifact root is ./mlruns of the current folder: the demo's artifacts must not go there."""
    import os
    import sys

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    proc = subprocess.run(
        [sys.executable, "-m", "trace2eval", "demo", "-o", tmp_path / "out", "--traces", "20"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    artifacts = tmp_path / "out" / "mlartifacts"
    assert any(artifacts.rglob("report.html")), "the generation run's artifacts live beside the demo store"


@pytest.mark.parametrize(
    "name, content, said",
    [
        ("watermark.json", "[]", "holds a list where trace2eval expects an object"),
        ("watermark.json", '"x"', "holds a string where trace2eval expects an object"),
        ("watermark.json", '{"timestamp_ms": "soon", "overlap_ms": 0}', "is not a valid watermark.json: timestamp_ms"),
        ("watermark.json", "{not json", "is not valid JSON"),
        ("runs.json", '{"a": 1}', "holds an object where trace2eval expects a list"),
        ("sources.json", "7", "holds a number where trace2eval expects a list"),
        ("generated_files.json", '{"files": []}', "is not a valid generated_files.json: files"),
    ],
)
def test_ill_typed_suite_state_is_named_with_a_fix(name, content, said):
    from trace2eval.errors import SessionError
    from trace2eval.sessions.suite import check_state_file

    with pytest.raises(SessionError) as info:
        check_state_file("/data/suite", name, content.encode())
    assert str(info.value).startswith(f"/data/suite/state/{name} {said}"), str(info.value)
    assert "restore it from a run's record" in str(info.value)


def test_ill_typed_suite_state_stops_a_run_with_an_error_line(cli, store, tmp_path):
    store.add("hi", "hello")
    suite = tmp_path / "suite"
    (suite / "state").mkdir(parents=True)
    (suite / "state" / "watermark.json").write_text("[]")
    (suite / "state" / "runs.json").write_text("{}")
    code, out, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "s", "--suite", suite
    )
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"Error: {suite}/state/"), last
    assert "where trace2eval expects" in last and "restore it from a run's record" in last


def _own_copy(demo_session, demo_store, tmp_path) -> Path:
    """The demo session and its store, copied so the test may change both."""
    import shutil

    shutil.copy(demo_store["folder"] / "mlflow.db", tmp_path / "mlflow.db")
    target = tmp_path / "session"
    shutil.copytree(demo_session.dir, target, ignore=shutil.ignore_patterns(".*"))
    config = json.loads((target / "state" / "config.json").read_text())
    config["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (target / "state" / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.slow
def test_a_deleted_eval_dataset_is_restored_not_blamed_on_an_edited_scorers_file(
    cli, demo_session, demo_store, tmp_path
):
    session = _own_copy(demo_session, demo_store, tmp_path)
    scorers = session / "evaluation" / "scorers.py"
    scorers.write_text(scorers.read_text() + "\n# a person's note\n")
    (session / "evaluation" / "eval_dataset.py").unlink()
    code, out, err = cli("task", "validate", "--session", session, "--force")
    assert (
        code == 0
        and json.loads((session / "state" / "validation_results.json").read_text())["validation_status"] == "failed"
    )
    code, out, err = cli("task", "fix", "--session", session, "--force")
    assert code == 0, err[-2000:]
    assert "evaluation/eval_dataset.py missing: rendering it again" in err and "scorers.py was edited" not in err
    assert (session / "evaluation" / "eval_dataset.py").exists()
    assert scorers.read_text().endswith("# a person's note\n")  # the person's file stays theirs


@pytest.mark.slow
def test_after_restoring_a_deleted_file_a_broken_edited_scorers_file_is_named(cli, demo_session, demo_store, tmp_path):
    session = _own_copy(demo_session, demo_store, tmp_path)
    scorers = session / "evaluation" / "scorers.py"
    scorers.write_text(scorers.read_text() + "\nraise RuntimeError('a person broke this')\n")
    (session / "evaluation" / "eval_dataset.py").unlink()
    cli("task", "validate", "--session", session, "--force")
    code, out, err = cli("task", "fix", "--session", session, "--force")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "evaluation/scorers.py was edited by a person" in last and "eval_dataset.py" not in last.split(" — ")[0]
    assert (session / "evaluation" / "eval_dataset.py").exists()
