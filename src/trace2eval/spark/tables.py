"""Open a location's trace tables and project them onto one canonical span shape.

The OpenTelemetry tables come in a few physical variants: attributes as a string map or as a
VARIANT, ids as hex strings or bytes, the status as a struct or flat columns, a root's parent id
empty or null. Everything downstream reads one projection:

    trace_id, span_id, parent_span_id (null for a root), name, start_time_unix_nano,
    end_time_unix_nano, status_code, status_message, attributes (JSON object text),
    events (JSON array text)

Only these columns are read, so the columnar scan skips the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from trace2eval.errors import SourceError
from trace2eval.spark.location import UCTraceLocation

REQUIRED_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "attributes",
)
METADATA_MAP_COLUMNS = {
    "trace_metadata": ("trace_metadata", "request_metadata", "metadata"),
    "tags": ("tags",),
    "assessments": ("assessments",),
}


@dataclass
class TraceTables:
    location: UCTraceLocation
    spans: Any  # DataFrame in the canonical projection
    spans_name: str
    metadata: Any | None  # DataFrame: otel_trace_id, trace_metadata, tags, assessments (JSON text)
    metadata_name: str | None


def open_tables(spark, location: UCTraceLocation) -> TraceTables:
    """The location's spans table (required) and trace-metadata view (optional), projected."""
    spans, spans_name, tried = _find_table(spark, location, location.spans_table)
    if spans is None:
        raise SourceError(
            f"no spans table for {location}: tried {'; '.join(tried)}",
            "check the catalog, schema and table prefix (the experiment's trace location in the MLflow UI), "
            "and that this identity has SELECT on the table (USE CATALOG / USE SCHEMA on its parents)",
        )
    projected = project_spans(spans, spans_name)
    metadata, metadata_name, _ = _find_table(spark, location, location.metadata_table)
    if metadata is not None:
        metadata = project_metadata(metadata)
        if metadata is None:
            metadata_name = None
    return TraceTables(location, projected, spans_name, metadata, metadata_name)


def _find_table(spark, location: UCTraceLocation, table: str):
    tried = []
    for name in location.candidates(table):
        try:
            df = spark.table(name)
            df.schema  # resolves the table now (lazy on Spark Connect)
            return df, name, tried
        except Exception as exc:  # not there, not visible, or not allowed: say which
            tried.append(f"{name} ({error_summary(exc)})")
    # A local session keeps its catalog in memory: tables written by another process are found
    # by their folder under the warehouse directory.
    warehouse = _warehouse_dir(spark)
    if warehouse:
        path = os.path.join(warehouse, f"{location.local_database}.db", table)
        if not os.path.isdir(path):
            tried.append(f"{path} (no such folder)")
        else:
            try:
                df = spark.read.parquet(path)
                df.schema
                return df, path, tried
            except Exception as exc:
                tried.append(f"{path} ({error_summary(exc)})")
    return None, None, tried


def error_summary(exc: Exception, limit: int = 160) -> str:
    """The error class and first line of a Spark error, e.g. `TABLE_OR_VIEW_NOT_FOUND`."""
    condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        code = condition() if condition else None
    except Exception:
        code = None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (text if not code or code in text else f"{code}: {text}")[:limit]


def _warehouse_dir(spark) -> str | None:
    """The session's warehouse folder when it is on this machine's file system (local Spark)."""
    try:
        value = spark.conf.get("spark.sql.warehouse.dir")
    except Exception:
        return None
    if not value or (":" in value.split("/")[0] and not value.startswith("file:")):
        return None  # dbfs:/, s3://, abfss://: a cluster's warehouse, not a local folder
    path = value[len("file:") :] if value.startswith("file:") else value
    return path if os.path.isdir(path) else None


def _type_name(df, column: str) -> str:
    return df.schema[column].dataType.typeName()


def _as_json_text(df, column: str):
    from pyspark.sql import functions as F

    kind = _type_name(df, column)
    if kind in ("string",):
        return F.col(column)
    if kind in ("binary",):
        return F.col(column).cast("string")
    return F.to_json(F.col(column))  # map, struct, array, variant


def _as_hex_id(df, column: str):
    from pyspark.sql import functions as F

    if _type_name(df, column) == "binary":
        return F.lower(F.hex(F.col(column)))
    return F.lower(F.trim(F.col(column).cast("string")))


def project_spans(df, name: str):
    """The canonical projection of a spans table, or a SourceError naming missing columns."""
    from pyspark.sql import functions as F

    columns = set(df.columns)
    missing = [c for c in REQUIRED_SPAN_COLUMNS if c not in columns]
    if missing:
        raise SourceError(
            f"{name} does not look like an OpenTelemetry spans table (missing {', '.join(missing)})",
            "point --source at the location MLflow writes the experiment's traces to",
        )
    if "status" in columns and _type_name(df, "status") == "struct":
        fields = {f.name for f in df.schema["status"].dataType.fields}
        code = F.col("status.code").cast("string") if "code" in fields else F.lit(None).cast("string")
        message = F.col("status.message").cast("string") if "message" in fields else F.lit(None).cast("string")
    else:
        code = F.col("status_code").cast("string") if "status_code" in columns else F.lit(None).cast("string")
        message = F.col("status_message").cast("string") if "status_message" in columns else F.lit(None).cast("string")
    parent = _as_hex_id(df, "parent_span_id")
    return df.select(
        _as_hex_id(df, "trace_id").alias("trace_id"),
        _as_hex_id(df, "span_id").alias("span_id"),
        F.when(parent == "", None).otherwise(parent).alias("parent_span_id"),
        F.col("name").cast("string").alias("name"),
        F.col("start_time_unix_nano").cast("long").alias("start_time_unix_nano"),
        F.col("end_time_unix_nano").cast("long").alias("end_time_unix_nano"),
        code.alias("status_code"),
        message.alias("status_message"),
        _as_json_text(df, "attributes").alias("attributes"),
        (_as_json_text(df, "events") if "events" in columns else F.lit(None).cast("string")).alias("events"),
    )


def project_metadata(df):
    """otel_trace_id plus trace_metadata / tags / assessments as JSON text; None without trace ids."""
    from pyspark.sql import functions as F

    if "trace_id" not in df.columns:
        return None
    out = [F.lower(F.regexp_extract(F.col("trace_id").cast("string"), r"([0-9a-fA-F]{32})$", 1)).alias("otel_trace_id")]
    for target, names in METADATA_MAP_COLUMNS.items():
        found = next((n for n in names if n in df.columns), None)
        out.append((_as_json_text(df, found) if found else F.lit(None).cast("string")).alias(target))
    # One row per trace, whatever the view does: the first row per id in a deterministic order.
    projected = df.select(*out).where(F.col("otel_trace_id") != "")
    return (
        projected.groupBy("otel_trace_id")
        .agg(F.min(F.struct("trace_metadata", "tags", "assessments")).alias("m"))
        .select("otel_trace_id", "m.trace_metadata", "m.tags", "m.assessments")
    )
