"""Find the Spark session to run on.

In this order: the session already running in the process (a Databricks job or notebook, or a
test); a databricks-connect session to a workspace cluster when `TRACE2EVAL_SPARK=connect` (a
laptop); a Spark Connect session when `SPARK_REMOTE` names a server (pyspark's own convention);
a local session when `TRACE2EVAL_SPARK=local`. databricks-connect is imported only when asked
for. The choice is an environment setting, not a session setting: the next task of a session may
run on another machine.
"""

from __future__ import annotations

import os
import sys

from trace2eval.errors import SourceError

SPARK_MODE_ENV = "TRACE2EVAL_SPARK"  # auto | connect | local
WAREHOUSE_ENV = "TRACE2EVAL_SPARK_WAREHOUSE"  # local mode: where the tables live
INSTALL_HINT = "pip install 'trace2eval[spark]'"


def require_pyspark():
    """Import pyspark, or explain how to get it."""
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise SourceError(
            "reading traces from Unity Catalog needs pyspark, which is not installed", INSTALL_HINT
        ) from None
    return SparkSession


def get_spark(mode: str | None = None):
    """The Spark session for this process (see the module docstring for the order)."""
    mode = (mode or os.environ.get(SPARK_MODE_ENV) or "auto").strip().lower()
    if mode not in ("auto", "connect", "local"):
        raise SourceError(f"unknown {SPARK_MODE_ENV}={mode!r}", "use auto, connect or local")
    SparkSession = require_pyspark()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if mode == "connect":
        return _connect_session()
    if os.environ.get("SPARK_REMOTE") and mode == "auto":
        try:
            return SparkSession.builder.getOrCreate()  # pyspark connects to SPARK_REMOTE
        except Exception as exc:
            raise SourceError(
                f"cannot open a Spark Connect session to SPARK_REMOTE={os.environ['SPARK_REMOTE']} ({exc})",
                "check the server address, or unset SPARK_REMOTE",
            ) from None
    if mode == "local":
        return local_session(os.environ.get(WAREHOUSE_ENV) or "spark-warehouse")
    raise SourceError(
        "no Spark session is running in this process",
        f"run inside a Databricks job or notebook, set {SPARK_MODE_ENV}=connect to use a workspace cluster "
        f"through databricks-connect, or {SPARK_MODE_ENV}=local (with {WAREHOUSE_ENV}) for local tables",
    )


def _connect_session():
    try:
        from databricks.connect import DatabricksSession
    except ImportError:
        raise SourceError(
            f"{SPARK_MODE_ENV}=connect needs databricks-connect, which is not installed",
            "pip install 'trace2eval[connect]' (its version must match the cluster's runtime)",
        ) from None
    try:
        return DatabricksSession.builder.getOrCreate()
    except Exception as exc:  # auth and connection errors come in many types
        raise SourceError(
            f"databricks-connect could not open a session ({exc})",
            "check DATABRICKS_HOST, auth (databricks auth login) and DATABRICKS_CLUSTER_ID "
            "or DATABRICKS_SERVERLESS_COMPUTE_ID=auto",
        ) from None


def local_session(warehouse: str, cores: int = 2, shuffle_partitions: int = 4, app_name: str = "trace2eval"):
    """A small local session whose tables live under `warehouse`.

    Python workers must be this interpreter: the default (`python3` on PATH) may lack trace2eval.
    """
    SparkSession = require_pyspark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warehouse = os.path.abspath(warehouse)
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        .getOrCreate()
    )
