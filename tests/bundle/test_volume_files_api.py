"""UC Volume paths from outside a workspace: the real databricks-sdk client against a loopback
server that speaks the Files API."""

from __future__ import annotations

import json
import time

import pytest
from filesapi_server import TEST_VOLUME, WORKSPACE_ID, serve_workspace

from trace2eval.errors import SessionError
from trace2eval.sessions.filesapi import VolumeError, VolumeFolder, open_folder
from trace2eval.sessions.folders import needs_files_api
from trace2eval.sessions.mirror import Mirror, mirror_path
from trace2eval.sessions.workdirs import session_workdir

VOLUME = TEST_VOLUME


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    yield from serve_workspace(monkeypatch, tmp_path)


def test_volume_paths_use_the_files_api_only_when_not_mounted(monkeypatch):
    assert needs_files_api(f"{VOLUME}/sessions")  # no /Volumes on this machine
    assert not needs_files_api("/tmp/sessions")
    monkeypatch.setenv("TRACE2EVAL_VOLUME_ACCESS", "local")
    assert not needs_files_api(f"{VOLUME}/sessions")
    assert type(open_folder(f"{VOLUME}/x")).__name__ == "LocalFolder"


def test_read_write_list_delete_over_the_wire(workspace):
    folder = open_folder(f"{VOLUME}/suite")
    assert isinstance(folder, VolumeFolder)
    folder.write_bytes("evaluation/scorers.py", b"print('hi')\n")
    for i in range(5):  # more entries than one listing page
        folder.write_bytes(f"state/f{i}.json", b"{}")
    assert folder.read_bytes("evaluation/scorers.py") == b"print('hi')\n"
    assert folder.read_bytes("missing.txt") is None
    assert folder.list_files() == ["evaluation/scorers.py", *[f"state/f{i}.json" for i in range(5)]]
    folder.delete("state/f0.json")
    folder.delete("state/never-existed.json")
    assert "state/f0.json" not in folder.list_files("state")
    paths = {path for method, path, _ in workspace.requests("PUT")}
    assert f"/api/2.0/fs/files{VOLUME}/suite/evaluation/scorers.py" in paths
    assert any(p.startswith(f"/api/2.0/fs/directories{VOLUME}/suite") for _, p, _ in workspace.requests("GET"))
    assert WORKSPACE_ID in workspace.state.workspace_headers  # the SDK found the workspace id itself


def test_lock_is_exclusive_and_a_stale_lock_is_taken_over(workspace):
    folder = VolumeFolder(f"{VOLUME}/sessions/s1")
    with folder.lock():
        with pytest.raises(SessionError, match=r"is in use by pid \d+"):
            with VolumeFolder(f"{VOLUME}/sessions/s1").lock():
                pass
    assert folder.read_bytes(".trace2eval.lock") is None  # released
    folder.write_bytes(
        ".trace2eval.lock", json.dumps({"host": "gone", "pid": 1, "since": time.time() - 7 * 3600}).encode()
    )
    with folder.lock():
        assert json.loads(folder.read_bytes(".trace2eval.lock"))["via"] == "files-api"
    puts = [r for r in workspace.requests("PUT") if r[1].endswith(".trace2eval.lock")]
    assert (puts[1][2]) == 409  # the second holder was refused by the server, not by a local check


def test_mirror_pushes_only_what_changed(workspace):
    remote = VolumeFolder(f"{VOLUME}/sessions/s2")
    remote.write_bytes("eval_tasks.json", b"{}")
    remote.write_bytes("state/analysis.json", b'{"a": 1}')
    with session_workdir(remote.location) as (local, sync):
        assert (local / "state" / "analysis.json").read_text() == '{"a": 1}'
        assert local == mirror_path(remote.location)
        before = len(workspace.requests("PUT"))
        (local / "state" / "validation_results.json").write_text("{}")
        sync()
        uploads = workspace.requests("PUT")[before:]
        assert [p for _, p, _ in uploads] == [f"/api/2.0/fs/files{remote.location}/state/validation_results.json"]
        sync()  # nothing changed: nothing sent
        assert len(workspace.requests("PUT")) == before + 1
        (local / "state" / "analysis.json").unlink()
    assert remote.read_bytes("state/analysis.json") is None  # a local delete reaches the Volume
    assert remote.read_bytes(".trace2eval.lock") is None


def test_pull_replaces_stale_local_copies(workspace):
    remote = VolumeFolder(f"{VOLUME}/sessions/s3")
    remote.write_bytes("eval_tasks.json", b"v1")
    mirror = Mirror(remote, mirror_path(remote.location))
    mirror.pull()
    remote.write_bytes("eval_tasks.json", b"v2 from the job")
    mirror.pull()
    assert (mirror.local / "eval_tasks.json").read_bytes() == b"v2 from the job"


def test_missing_session_and_denied_volume_are_clear_errors(workspace):
    with pytest.raises(SessionError, match="is not a trace2eval session in the Volume"):
        with session_workdir(f"{VOLUME}/sessions/nope"):
            pass
    workspace.state.deny.append("/Volumes/main/secret")
    with pytest.raises(VolumeError, match="permission denied — you need READ VOLUME and WRITE VOLUME"):
        VolumeFolder("/Volumes/main/secret/x").write_bytes("a", b"b")


def test_wrong_token_is_a_clear_error(workspace, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-wrong")
    with pytest.raises(VolumeError, match="rejected the credentials — refresh them"):
        VolumeFolder(f"{VOLUME}/x").read_bytes("a")


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(VolumeError, match="set DATABRICKS_HOST and DATABRICKS_TOKEN"):
        VolumeFolder(f"{VOLUME}/x").read_bytes("a")


def test_cli_task_and_status_on_a_volume_session(workspace, store, cli, tmp_path):
    for i in range(6):
        store.add(
            f"where is order {i}?", f"Order {i} ships tomorrow.", tools=[{"name": "get_order", "args": {"id": i}}]
        )
    session = f"{VOLUME}/sessions/laptop-1"
    code, out, err = cli(
        "task", "initializer", "--session", session, "-e", store.experiment_id, "--tracking-uri", store.uri
    )
    assert code == 0, err
    assert out.strip().splitlines()[-1] == session
    remote = VolumeFolder(session)
    files = remote.list_files()
    assert {"eval_tasks.json", "state/analysis.json", "state/config.json"} <= set(files)
    assert remote.read_bytes(".trace2eval.lock") is None
    plan = json.loads(remote.read_bytes("eval_tasks.json"))
    assert plan["tasks"][0]["status"] == "completed"

    code, out, err = cli("status", session)
    assert code == 0 and "initializer" in out and "completed" in out

    code, out, err = cli("task", "script", "--session", session)
    assert code == 1 and "Error: task 'script' needs 'dataset' to be completed first" in err
    assert json.loads(remote.read_bytes("eval_tasks.json"))["tasks"][3]["status"] == "pending"


@pytest.mark.slow
def test_cli_nightly_run_with_session_and_suite_in_the_volume(workspace, store, cli):
    from tracefactory import add_support_traces

    add_support_traces(store, 0, 8)
    out, suite = f"{VOLUME}/sessions", f"{VOLUME}/suite"
    code, stdout, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", out, "--suite", suite
    )
    assert code == 0, err[-3000:]
    session = stdout.strip().splitlines()[-1]
    assert session.startswith(f"{out}/")
    remote_session, remote_suite = VolumeFolder(session), VolumeFolder(suite)
    assert {"eval_tasks.json", "state/validation_results.json", "evaluation/scorers.py"} <= set(
        remote_session.list_files()
    )
    assert {"SUITE.md", "evaluation/run_eval.py", "state/watermark.json"} <= set(remote_suite.list_files())
    assert json.loads(remote_suite.read_bytes("state/watermark.json"))["traces_total"] == 8

    # Someone edits scorers.py in the Volume; the next night keeps it and writes scorers.py.new.
    remote_suite.write_bytes(
        "evaluation/scorers.py", remote_suite.read_bytes("evaluation/scorers.py") + b"\n# edited in the workspace\n"
    )
    add_support_traces(store, 500, 3)
    code, stdout, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", out, "--suite", suite
    )
    assert code == 0, err[-3000:]
    assert remote_suite.read_bytes("evaluation/scorers.py").endswith(b"# edited in the workspace\n")
    assert remote_suite.read_bytes("evaluation/scorers.py.new") is not None
    assert json.loads(remote_suite.read_bytes("state/watermark.json"))["traces_total"] == 11
    assert remote_suite.read_bytes(".trace2eval.lock") is None and remote_session.read_bytes(".trace2eval.lock") is None

    code, stdout, err = cli("resume", session)
    assert code == 0 and "already finished" in err and stdout.strip().splitlines()[-1] == session
