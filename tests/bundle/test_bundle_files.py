"""The bundle as committed: valid for Databricks, and shaped the way the nightly job needs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from trace2eval.bundle import definition, notebooks
from trace2eval.bundle.definition import BundleError
from trace2eval.bundle.graph import leaves
from trace2eval.bundle.job_tasks import JOB_PARAMETERS, MONITOR_TASK, TASK_PARAMETERS, TASKS

ROOT = Path(__file__).resolve().parents[2]
# The official schema (bundle/schema/jsonschema.json of the Databricks CLI) is not vendored: point
# TRACE2EVAL_BUNDLE_SCHEMA at a copy, or keep one at shared/bundle/bundle_schema.json beside the checkout.
SCHEMA = Path(os.environ.get("TRACE2EVAL_BUNDLE_SCHEMA") or ROOT.parent / "shared" / "bundle" / "bundle_schema.json")
REQUIRED = {"experiment_id": "123", "volume_path": "/Volumes/main/evals/trace2eval"}
BUNDLE_FILES = [ROOT / "databricks.yml", *sorted((ROOT / "resources").glob("*.yml"))]
SESSION_TASKS = list(TASKS)
NOTEBOOKS = [*SESSION_TASKS, MONITOR_TASK]  # the session tasks, then the monitors' sync


def resolved(target: str, **extra):
    return definition.load(ROOT, target, {**REQUIRED, **extra})


def nightly(target: str = "dev", **extra) -> dict:
    return resolved(target, **extra).job("trace2eval_nightly")[1]


# -- Databricks' own definitions ---------------------------------------------------------------


@pytest.fixture(scope="module")
def schema_validator():
    if not SCHEMA.exists():
        pytest.skip("official bundle schema not available on this machine")
    jsonschema = pytest.importorskip("jsonschema")
    # Python's `re` has no \p{L} (letter) / \p{N} (digit) classes: rewrite them, the pair first
    # ([\p{L}\p{N}] is a word character that is not "_"), as a nested class would mean something else.
    text = SCHEMA.read_text()
    for unicode_class, python_class in (
        (r"[\\p{L}\\p{N}]", r"[^\\W_]"),
        (r"\\p{L}", r"[^\\W\\d_]"),
        (r"\\p{N}", r"\\d"),
    ):
        text = text.replace(unicode_class, python_class)
    assert "\\p{" not in text
    return jsonschema.Draft202012Validator(json.loads(text))


def schema_errors(validator, document) -> list[str]:
    """The innermost reasons (a oneOf failure says little by itself)."""

    def innermost(error):
        return [error] if not error.context else [leaf for e in error.context for leaf in innermost(e)]

    found = {
        ("/".join(map(str, e.absolute_path)), e.message[:160])
        for err in validator.iter_errors(document)
        for e in innermost(err)
        if "does not match" not in e.message
    }
    return [f"{path}: {message}" for path, message in sorted(found)]


@pytest.mark.parametrize("path", BUNDLE_FILES, ids=lambda p: p.name)
def test_each_bundle_file_matches_the_official_schema(schema_validator, path):
    errors = schema_errors(schema_validator, yaml.safe_load(path.read_text()))
    assert not errors, "\n".join(errors)


def test_merged_configuration_matches_the_official_schema(schema_validator):
    merged = yaml.safe_load((ROOT / "databricks.yml").read_text())
    for path in BUNDLE_FILES[1:]:
        merged = definition.merge(merged, yaml.safe_load(path.read_text()))
    assert schema_errors(schema_validator, merged) == []


def test_schema_check_can_fail(schema_validator):
    job_file = yaml.safe_load((ROOT / "resources" / "trace2eval_nightly.job.yml").read_text())
    job_file["resources"]["jobs"]["trace2eval_nightly"]["tasks"][0]["notebok_task"] = {}
    assert any("notebok_task" in e for e in schema_errors(schema_validator, job_file))


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_job_matches_the_typed_model_of_databricks_bundles(target):
    from databricks.bundles.jobs import Job

    extra = {"service_principal": "6a8e2f00-0000-4000-8000-000000000001"} if target == "prod" else {}
    job = Job.from_dict(nightly(target, **extra))
    assert [t.task_key for t in job.tasks] == [
        "initializer",
        "dataset",
        "scorers",
        "script",
        "validate",
        "needs_fix",
        "fix",
        "monitor",
    ]
    assert job.max_concurrent_runs == 1
    # The same model rejects what Databricks would reject: the check above can fail.
    with pytest.raises(ValueError, match="Unexpected field"):
        Job.from_dict({**nightly(target, **extra), "schedulee": {}})


def test_every_job_file_is_one_resource_named_after_it():
    for path in BUNDLE_FILES[1:]:
        resources = yaml.safe_load(path.read_text())["resources"]
        ((kind, items),) = resources.items()
        ((key, _),) = items.items()
        assert path.name == f"{key}.{kind[:-1]}.yml"


# -- the nightly job -----------------------------------------------------------------------------


def test_one_task_per_session_each_a_notebook_calling_its_task():
    job = nightly()
    tasks = {t["task_key"]: t for t in job["tasks"]}
    for name in SESSION_TASKS:
        task = tasks[name]
        path = Path(task["notebook_task"]["notebook_path"])
        assert path.exists() and path.parent == ROOT / "notebooks"
        code = "\n".join(notebooks.code_cells(path))
        assert f'run_job_task("{name}", params, dbutils)' in code
        assert task["libraries"] == [{"whl": str(ROOT / "dist" / "*.whl")}]
        assert task["job_cluster_key"] == job["job_clusters"][0]["job_cluster_key"]
    chain = [tasks[name]["depends_on"][0]["task_key"] for name in SESSION_TASKS[1:5]]
    assert chain == SESSION_TASKS[:4]


def test_fix_runs_only_when_validation_did_not_pass_and_monitor_is_the_only_leaf():
    job = nightly()
    tasks = {t["task_key"]: t for t in job["tasks"]}
    condition = tasks["needs_fix"]["condition_task"]
    assert condition == {"op": "NOT_EQUAL", "left": "{{tasks.validate.values.validation_status}}", "right": "passed"}
    assert tasks["needs_fix"]["depends_on"] == [{"task_key": "validate"}]
    assert tasks["fix"]["depends_on"] == [{"task_key": "needs_fix", "outcome": "true"}]
    # monitor comes after a validated publish, whichever branch published: after validate when fix
    # was excluded (an excluded dependency counts as a success; were fix its only dependency, monitor
    # would be excluded with it), after fix when fix repaired the suite.
    assert tasks["monitor"]["depends_on"] == [{"task_key": "validate"}, {"task_key": "fix"}]
    # The run's result comes from its leaves: monitor is the only one, and a failed fix makes it
    # UPSTREAM_FAILED (ALL_SUCCESS), so the run still fails and alerts; nothing may mask it.
    assert leaves(job) == ["monitor"]
    assert all(t.get("run_if", "ALL_SUCCESS") == "ALL_SUCCESS" for t in job["tasks"])


def test_monitoring_is_off_by_default_and_set_by_two_variables():
    params = {p["name"]: p["default"] for p in nightly()["parameters"]}
    assert (params["monitor_sample_rate"], params["fail_on_monitored_regression"]) == (0, False)
    params = {
        p["name"]: p["default"]
        for p in nightly(monitor_sample_rate="0.2", fail_on_monitored_regression="true")["parameters"]
    }
    assert (params["monitor_sample_rate"], params["fail_on_monitored_regression"]) == ("0.2", "true")


def test_schedule_alerts_health_and_limits():
    job = nightly("dev", alert_emails=["oncall@example.com"], failure_webhooks=[{"id": "dest-1"}])
    assert job["schedule"]["quartz_cron_expression"] == "0 0 3 * * ?" and job["schedule"]["timezone_id"] == "UTC"
    assert job["schedule"]["pause_status"] == "PAUSED"  # dev
    prod = nightly("prod", service_principal="sp-app-id")
    assert prod["schedule"]["pause_status"] == "UNPAUSED"
    assert not prod["name"].startswith("[dev")
    assert job["email_notifications"]["on_failure"] == ["oncall@example.com"]
    assert job["webhook_notifications"]["on_failure"] == [{"id": "dest-1"}]
    assert nightly()["email_notifications"]["on_failure"] == []  # optional: nobody by default
    (rule,) = job["health"]["rules"]
    assert rule["metric"] == "RUN_DURATION_SECONDS" and rule["op"] == "GREATER_THAN" and int(rule["value"]) > 0
    assert job["max_concurrent_runs"] == 1 and job["timeout_seconds"] > 0
    for task in job["tasks"]:
        if "notebook_task" in task:
            assert task["timeout_seconds"] > 0 and "max_retries" in task, task["task_key"]
    assert {t["task_key"]: t["max_retries"] for t in job["tasks"] if "notebook_task" in t}["fix"] == 0


def test_targets_dev_and_prod():
    dev = resolved("dev")
    assert dev.mode == "development" and dev.target == "dev"
    assert definition.read_yaml(ROOT / "databricks.yml")["targets"]["dev"]["default"] is True
    prod = resolved("prod", service_principal="sp-app-id")
    assert prod.mode == "production"
    assert prod.config["run_as"] == {"service_principal_name": "sp-app-id"}
    assert prod.config["workspace"]["root_path"] == "/Workspace/Shared/.bundle/trace2eval/prod"
    assert {"level": "CAN_VIEW", "group_name": "users"} in prod.config["permissions"]


def test_prod_without_a_service_principal_is_refused():
    with pytest.raises(BundleError, match="service_principal"):
        resolved("prod")


def test_wheel_artifact_matches_the_package():
    (artifact,) = definition.read_yaml(ROOT / "databricks.yml")["artifacts"].values()
    assert artifact["type"] == "whl" and artifact["path"] == "." and "wheel" in artifact["build"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'name = "trace2eval"' in pyproject


def test_parameters_are_exactly_what_the_notebooks_read():
    job = nightly()
    assert [p["name"] for p in job["parameters"]] == list(JOB_PARAMETERS)
    for task in job["tasks"]:
        if "notebook_task" in task:
            assert set(task["notebook_task"]["base_parameters"]) == set(TASK_PARAMETERS)
            assert task["notebook_task"]["base_parameters"]["run_id"] == "{{job.run_id}}"


def test_no_secrets_or_workspace_urls_in_bundle_files():
    for path in [*BUNDLE_FILES, *sorted((ROOT / "notebooks").glob("*.py"))]:
        text = path.read_text()
        assert not re.search(r"dapi[0-9a-f]{8,}|https://[\w.-]+\.(cloud\.databricks|azuredatabricks)\.", text), path
    names = [p["name"] for p in nightly()["parameters"]]
    assert not [n for n in names if re.search(r"token|password|api_key|secret$", n)]


# -- notebooks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_valid_thin_notebooks(name):
    path = ROOT / "notebooks" / f"{name}.py"
    assert path.read_text().splitlines()[0] == notebooks.HEADER
    notebook = notebooks.to_notebook(path)  # validated against nbformat's schema
    assert notebook.cells[0].cell_type == "markdown" and f"trace2eval: {name}" in notebook.cells[0].source
    assert notebooks.thinness_problems(path) == []
    code = "\n".join(notebooks.code_cells(path))
    assert "dbutils.widgets.get" in code and "dbutils.jobs.taskValues.set" in code


def test_thinness_check_catches_logic(tmp_path):
    fat = tmp_path / "fat.py"
    fat.write_text(f"{notebooks.HEADER}\nimport os\n# COMMAND ----------\nif os.environ.get('X'):\n    print(1)\n")
    problems = notebooks.thinness_problems(fat)
    assert any("imports os" in p for p in problems) and any("If" in p for p in problems)
    with pytest.raises(ValueError, match="does not start with"):
        notebooks.parse(tmp_path.joinpath("plain.py").write_text("print(1)\n") and tmp_path / "plain.py")


def test_readme_deploy_section_matches_the_bundle():
    """The commands the README tells people to type use this bundle's real names."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy on Databricks") :]
    section = section[: section.index("\n## ", 4)]
    declared = set(definition.read_yaml(ROOT / "databricks.yml")["variables"])
    job = nightly()
    assert set(re.findall(r"databricks bundle run (\w+)", section)) == {"trace2eval_nightly"}
    assert set(re.findall(r"--var (\w+)=", section)) <= declared
    assert set(re.findall(r"--params (\w+)=", section)) <= {p["name"] for p in job["parameters"]}
    settings = section[section.index("Settings are bundle variables") : section.index("**Review the artifacts**")]
    named = set(re.findall(r"`([a-z_]+)`", settings)) - {"none", "databricks"}
    assert named and named <= declared, named - declared
    assert {"alert_emails", "failure_webhooks", "duration_warning_seconds", "secret_scope"} <= set(
        re.findall(r"`([a-z_]+)`", section)
    )
