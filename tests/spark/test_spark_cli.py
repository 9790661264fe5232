"""`trace2eval run --source uc:...` end to end: a separate process with its own local Spark session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trace2eval.sessions.session import Session

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_run_from_uc_tables_validates(spark, uc_tables, demo_store, tmp_path):
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    env = {
        **os.environ,
        "TRACE2EVAL_SOURCE": str(uc_tables["demo"]),
        "TRACE2EVAL_SPARK": "local",
        "TRACE2EVAL_SPARK_WAREHOUSE": warehouse,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "run",
            "-e",
            demo_store["experiment_id"],
            "--tracking-uri",
            demo_store["uri"],
            "--out",
            tmp_path / "sessions",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Reading traces with Spark from" in proc.stderr and "Digested 40 traces" in proc.stderr
    session = Session.open(Path(proc.stdout.strip().splitlines()[-1]))
    assert session.config().source == "uc:main.agents.demo"
    analysis = session.analysis().model_dump()
    assert analysis["trace_summary"]["total_analyzed"] == 40
    assert analysis["population"]["note"] == "every matching trace, digested on the cluster"
    validation = session.validation().model_dump()
    assert validation["validation_status"] == "passed" and validation["run_id"]
    points = json.loads((session.state_dir / "trace_points.json").read_text())
    assert len(points["timestamps_ms"]) == 40 and points["timestamps_ms"] == sorted(
        points["timestamps_ms"], reverse=True
    )
    rows = json.loads(session.dataset_json.read_text())["rows"]
    assert len(rows) >= 10
    from mlflow import MlflowClient

    client = MlflowClient(demo_store["uri"])
    for row in rows[:5]:  # rows come from the span table; they are the experiment's own traces
        original = client.get_trace(row["metadata"]["source_trace"])
        root = next(s for s in original.data.spans if s.parent_id is None)
        assert row["inputs"] == root.inputs


def test_initializer_over_spark_connect(spark, uc_tables, demo_store, tmp_path):
    """Spark Connect is what databricks-connect and serverless compute speak: the engine runs
    through it unchanged (a local Connect server here, found through SPARK_REMOTE)."""
    pytest.importorskip("grpc")
    from test_spark_engine import assert_same, local_analysis

    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        f"spark.sql.warehouse.dir {warehouse}\nspark.sql.shuffle.partitions 2\nspark.ui.enabled false\n"
    )
    env = {
        **os.environ,
        "SPARK_REMOTE": "local[2]",
        "SPARK_CONF_DIR": str(conf),
        "PYSPARK_PYTHON": sys.executable,
        "TRACE2EVAL_SOURCE": str(uc_tables["demo"]),
    }
    env.pop("TRACE2EVAL_SPARK", None)
    session_dir = tmp_path / "sessions" / "connect"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trace2eval",
            "task",
            "initializer",
            "--session",
            session_dir,
            "-e",
            demo_store["experiment_id"],
            "--tracking-uri",
            demo_store["uri"],
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    analysis = json.loads((session_dir / "state" / "analysis.json").read_text())
    assert_same(analysis, local_analysis(demo_store["uri"], demo_store["experiment_id"]))
