"""`--source`: parsing, table names, and the errors a user sees. No Spark needed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from trace2eval.errors import Trace2EvalError
from trace2eval.spark.location import UCTraceLocation, check_source, is_uc_source


def test_locations_and_their_table_names():
    loc = UCTraceLocation.parse("uc:main.agents.support_bot")
    assert (loc.catalog, loc.schema, loc.prefix) == ("main", "agents", "support_bot")
    assert loc.spans_table == "support_bot_otel_spans" and loc.metadata_table == "support_bot_trace_metadata"
    assert loc.qualified(loc.spans_table) == "`main`.`agents`.`support_bot_otel_spans`"
    assert loc.local_qualified(loc.spans_table) == "`main__agents`.`support_bot_otel_spans`"
    assert str(loc) == "uc:main.agents.support_bot"
    # Without a prefix: MLflow's default table names for a schema location.
    default = UCTraceLocation.parse(" UC:`my-cat`.prod ")
    assert default.spans_table == "mlflow_experiment_trace_otel_spans"
    assert str(default) == "uc:my-cat.prod" and default.qualified("t") == "`my-cat`.`prod`.`t`"


@pytest.mark.parametrize(
    "source, message",
    [
        ("uc:main", "cannot read the Unity Catalog trace location 'uc:main'"),
        ("uc:a.b.c.d", "cannot read the Unity Catalog trace location"),
        ("uc:main..x", "cannot read the Unity Catalog trace location"),
        ("uc:main.sch ema", "'sch ema' in 'uc:main.sch ema' is not a valid Unity Catalog name"),
        ("delta:s3://bucket/traces", "unknown --source 'delta:s3://bucket/traces'"),
    ],
)
def test_bad_sources(source, message):
    with pytest.raises(Trace2EvalError) as err:
        check_source(source)
    assert message in str(err.value) and "uc:<catalog>.<schema>[.<table_prefix>]" in str(err.value)


def test_check_source_normalizes():
    assert check_source("MLflow") == "mlflow" and check_source("") == "mlflow"
    assert check_source("uc:Main.Agents") == "uc:Main.Agents"
    assert is_uc_source("uc:a.b") and not is_uc_source("mlflow") and not is_uc_source(None)


def test_cli_reports_a_bad_source_plainly(cli, store, tmp_path):
    code, out, err = cli(
        "run", "-e", store.experiment_id, "--tracking-uri", store.uri, "--out", tmp_path / "s", "--source", "uc:main"
    )
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "Error: cannot read the Unity Catalog trace location 'uc:main' — use --source mlflow, or "
        "uc:<catalog>.<schema>[.<table_prefix>], e.g. uc:main.agents.support_bot"
    )
    assert not list(tmp_path.glob("s/*"))  # no session is created for settings that cannot work


def test_source_is_saved_in_the_session_config(tmp_path, store):
    from trace2eval.config import SessionConfig
    from trace2eval.sessions import runner

    config = SessionConfig.from_inputs(store.experiment_id, store.uri, source="uc:main.agents.bot")
    session = runner.create_session(config, tmp_path)
    assert json.loads(session.config_file.read_text())["source"] == "uc:main.agents.bot"
    assert session.config().source == "uc:main.agents.bot"


def test_pyspark_is_not_imported_unless_asked():
    """pyspark is optional: the CLI and every task import without it."""
    code = (
        "import sys, trace2eval.cli.main, trace2eval.sessions.tasks.initializer, trace2eval.sessions.tasks.dataset, "
        "trace2eval.spark.engine, trace2eval.spark.population, trace2eval.spark.export; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j', 'databricks.connect')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_missing_pyspark_is_a_clear_error(cli, store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if the extra were not installed
    code, out, err = cli(
        "run",
        "-e",
        store.experiment_id,
        "--tracking-uri",
        store.uri,
        "--out",
        tmp_path / "s",
        "--source",
        "uc:main.agents.bot",
    )
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "Error: reading traces from Unity Catalog needs pyspark, which is not "
        "installed — pip install 'trace2eval[spark]'"
    )


def test_without_a_session_the_error_says_how_to_get_one():
    pytest.importorskip("pyspark")
    code = (
        "from trace2eval.spark.session import get_spark\n"
        "from trace2eval.errors import SourceError\n"
        "for mode in (None, 'connect', 'bogus'):\n"
        "    try:\n"
        "        get_spark(mode)\n"
        "    except SourceError as e:\n"
        "        print(e)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRACE2EVAL_SPARK"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("no Spark session is running in this process — run inside a Databricks job")
    assert "TRACE2EVAL_SPARK=connect" in lines[0] and "TRACE2EVAL_SPARK=local" in lines[0]
    assert lines[-1] == "unknown TRACE2EVAL_SPARK='bogus' — use auto, connect or local"
    if importlib.util.find_spec("databricks.connect") is None:  # installed, it would try a workspace
        assert lines[1].startswith(
            "TRACE2EVAL_SPARK=connect needs databricks-connect, which is not installed — "
            "pip install 'trace2eval[connect]'"
        )
