"""Reading a bundle the way the Databricks CLI merges and resolves it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from trace2eval.bundle import definition
from trace2eval.bundle.definition import BundleError


def write_bundle(root: Path, main: dict, resources: dict[str, dict] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "databricks.yml").write_text(yaml.safe_dump(main))
    for name, body in (resources or {}).items():
        (root / "resources").mkdir(exist_ok=True)
        (root / "resources" / name).write_text(yaml.safe_dump(body))
    return root


JOB = {
    "resources": {
        "jobs": {
            "j": {
                "name": "job ${var.who}",
                "tasks": [
                    {"task_key": "a", "notebook_task": {"notebook_path": "../nb/a.py"}},
                    {
                        "task_key": "b",
                        "depends_on": [{"task_key": "a"}],
                        "notebook_task": {"notebook_path": "../nb/b.py"},
                        "email_notifications": {"on_failure": "${var.emails}"},
                    },
                ],
            }
        }
    }
}


def bundle(tmp_path, targets=None, variables=None):
    return write_bundle(
        tmp_path / "b",
        {
            "bundle": {"name": "demo"},
            "include": ["resources/*.yml"],
            "variables": variables or {"who": {"default": "me"}, "emails": {"type": "complex", "default": []}},
            "targets": targets or {"dev": {"mode": "development", "default": True}},
        },
        {"j.job.yml": JOB},
    )


def test_paths_are_relative_to_the_file_that_names_them(tmp_path):
    b = definition.load(bundle(tmp_path))
    key, job = b.job()
    assert key == "j"
    assert job["tasks"][0]["notebook_task"]["notebook_path"] == str((tmp_path / "b" / "nb" / "a.py").resolve())


def test_variable_precedence_cli_then_env_then_target_then_default(tmp_path, monkeypatch):
    root = bundle(tmp_path, targets={"dev": {"default": True, "variables": {"who": "target"}}})
    assert definition.load(root).job()[1]["name"] == "job target"
    monkeypatch.setenv("BUNDLE_VAR_who", "env")
    assert definition.load(root).job()[1]["name"] == "job env"
    assert definition.load(root, overrides={"who": "flag"}).job()[1]["name"] == "job flag"


def test_complex_variables_keep_their_type(tmp_path):
    b = definition.load(bundle(tmp_path), overrides={"emails": ["a@example.com", "b@example.com"]})
    assert b.job()[1]["tasks"][1]["email_notifications"]["on_failure"] == ["a@example.com", "b@example.com"]


def test_target_overrides_merge_tasks_by_key(tmp_path):
    root = bundle(
        tmp_path,
        targets={
            "dev": {
                "default": True,
                "resources": {
                    "jobs": {
                        "j": {
                            "tasks": [
                                {"task_key": "b", "timeout_seconds": 60},
                                {
                                    "task_key": "c",
                                    "depends_on": [{"task_key": "b"}],
                                    "notebook_task": {"notebook_path": "nb/c.py"},
                                },
                            ]
                        }
                    }
                },
            }
        },
    )
    tasks = definition.load(root).job()[1]["tasks"]
    assert [t["task_key"] for t in tasks] == ["a", "b", "c"]
    assert tasks[1]["timeout_seconds"] == 60 and tasks[1]["depends_on"] == [{"task_key": "a"}]


def test_development_mode_prefixes_and_pauses(tmp_path):
    job = copy.deepcopy(JOB)
    job["resources"]["jobs"]["j"]["schedule"] = {
        "quartz_cron_expression": "0 0 3 * * ?",
        "timezone_id": "UTC",
        "pause_status": "UNPAUSED",
    }
    root = write_bundle(
        tmp_path / "b",
        {
            "bundle": {"name": "demo"},
            "include": ["resources/*.yml"],
            "variables": {"who": {"default": "x"}, "emails": {"type": "complex", "default": []}},
            "targets": {"dev": {"mode": "development", "default": True}, "prod": {"mode": "production"}},
        },
        {"j.job.yml": job},
    )
    dev = definition.load(root, "dev").job()[1]
    assert dev["name"].startswith("[dev ") and dev["schedule"]["pause_status"] == "PAUSED"
    assert definition.load(root, "prod").job()[1]["schedule"]["pause_status"] == "UNPAUSED"


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"variables": {"who": {"description": "no default"}, "emails": {"type": "complex", "default": []}}},
            "variable 'who' has no value",
        ),
        ({"targets": {"dev": {"mode": "staging", "default": True}}}, "unknown mode 'staging'"),
        ({"targets": {"a": {}, "b": {}}}, "no default target"),
        ({"include": ["nothing/*.yml"]}, "matches no file"),
    ],
)
def test_clear_errors(tmp_path, change, message):
    main = {
        "bundle": {"name": "demo"},
        "include": ["resources/*.yml"],
        "variables": {"who": {"default": "me"}, "emails": {"type": "complex", "default": []}},
        "targets": {"dev": {"default": True}},
    }
    main.update(change)
    root = write_bundle(tmp_path / "b", main, {"j.job.yml": JOB})
    with pytest.raises(BundleError, match=message):
        definition.load(root)


def test_unknown_variable_and_reference(tmp_path):
    root = bundle(tmp_path)
    with pytest.raises(BundleError, match="unknown variable"):
        definition.load(root, overrides={"nope": "1"})
    (root / "resources" / "j.job.yml").write_text(
        yaml.safe_dump({"resources": {"jobs": {"j": {"name": "${var.missing}", "tasks": []}}}})
    )
    with pytest.raises(BundleError, match=r"unknown reference \$\{var.missing\}"):
        definition.load(root)


def test_missing_bundle_file_and_bad_yaml(tmp_path):
    with pytest.raises(BundleError, match="no databricks.yml"):
        definition.load(tmp_path)
    (tmp_path / "databricks.yml").write_text("bundle: [unclosed\n")
    with pytest.raises(BundleError, match="not valid YAML"):
        definition.load(tmp_path)


def test_assignments():
    assert definition.parse_assignments(["a=1", "b=x=y", "c="], "--var") == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(BundleError, match="use --param name=value"):
        definition.parse_assignments(["novalue"], "--param")


def test_run_local_cli_errors_name_the_fix(cli, tmp_path):
    root = Path(__file__).resolve().parents[2]
    code, out, err = cli("job", "run-local", "--bundle-root", root, "--runs-dir", tmp_path)
    assert code == 1
    assert (
        err.strip()
        == "Error: variable 'experiment_id' has no value — pass --var experiment_id=<value> or set it in the target"
    )
    code, out, err = cli(
        "job",
        "run-local",
        "--bundle-root",
        root,
        "--runs-dir",
        tmp_path,
        "--var",
        "experiment_id=1",
        "--var",
        "volume_path=/tmp/x",
        "--param",
        "max_trace=5",
    )
    assert code == 1 and "Error: unknown job parameter(s) ['max_trace'] — job parameters are: experiment_id," in err
    code, out, err = cli("job", "run-local", "--bundle-root", root, "--var", "alert_emails=oncall@example.com")
    assert code == 1 and "alert_emails is a complex variable and needs JSON" in err
    code, out, err = cli("job", "run-local", "--bundle-root", root, "--target", "staging", "--var", "experiment_id=1")
    assert code == 1 and "no target 'staging'" in err
