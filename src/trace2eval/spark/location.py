"""Where an experiment's traces live in Unity Catalog, and the table names that follow from it.

MLflow writes traces bound to a Unity Catalog location as OpenTelemetry tables: with a table
prefix, `<prefix>_otel_spans` (one row per span) beside `<prefix>_trace_metadata` (one row per
trace: tags, metadata, assessments); without one, MLflow's default prefix
`mlflow_experiment_trace` applies (`mlflow_experiment_trace_otel_spans`).

Pure Python: the CLI validates `--source` with it before anything imports pyspark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trace2eval.errors import Trace2EvalError

SOURCE_MLFLOW = "mlflow"
UC_PREFIX = "uc:"
DEFAULT_TABLE_PREFIX = "mlflow_experiment_trace"
# Unity Catalog names: letters, digits, underscores; hyphens when quoted (we always quote).
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_USAGE = "use --source mlflow, or uc:<catalog>.<schema>[.<table_prefix>], e.g. uc:main.agents.support_bot"


def is_uc_source(source: str | None) -> bool:
    return bool(source) and str(source).strip().lower().startswith(UC_PREFIX)


def check_source(source: str) -> str:
    """The normalized `--source` value, or a Trace2EvalError saying what is wrong."""
    text = str(source or "").strip()
    if text.lower() == SOURCE_MLFLOW or not text:
        return SOURCE_MLFLOW
    if is_uc_source(text):
        return str(UCTraceLocation.parse(text))
    raise Trace2EvalError(f"unknown --source {text!r}", _USAGE)


@dataclass(frozen=True)
class UCTraceLocation:
    """`uc:<catalog>.<schema>[.<table_prefix>]`."""

    catalog: str
    schema: str
    prefix: str | None = None

    @classmethod
    def parse(cls, source: str) -> "UCTraceLocation":
        text = str(source).strip()
        if not is_uc_source(text):
            raise Trace2EvalError(f"{text!r} is not a Unity Catalog trace location", _USAGE)
        parts = [p.strip().strip("`") for p in text[len(UC_PREFIX) :].split(".")]
        if len(parts) not in (2, 3) or not all(parts):
            raise Trace2EvalError(f"cannot read the Unity Catalog trace location {text!r}", _USAGE)
        bad = [p for p in parts if not _NAME.match(p)]
        if bad:
            raise Trace2EvalError(
                f"{bad[0]!r} in {text!r} is not a valid Unity Catalog name",
                "names use letters, digits, underscores and hyphens; " + _USAGE,
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return f"{UC_PREFIX}{self.catalog}.{self.schema}" + (f".{self.prefix}" if self.prefix else "")

    @property
    def table_prefix(self) -> str:
        return self.prefix or DEFAULT_TABLE_PREFIX

    @property
    def spans_table(self) -> str:
        return f"{self.table_prefix}_otel_spans"

    @property
    def metadata_table(self) -> str:
        return f"{self.table_prefix}_trace_metadata"

    def qualified(self, table: str) -> str:
        """`catalog`.`schema`.`table`: the name on a Unity-Catalog-enabled cluster."""
        return ".".join(_quote(p) for p in (self.catalog, self.schema, table))

    @property
    def local_database(self) -> str:
        """The database that stands in for `<catalog>.<schema>` in a local Spark session.

        A local session has one catalog (`spark_catalog`) with single-part databases, so the
        catalog and schema are joined by a double underscore: `main.agents` → `main__agents`.
        """
        return f"{self.catalog}__{self.schema}"

    def local_qualified(self, table: str) -> str:
        return f"{_quote(self.local_database)}.{_quote(table)}"

    def candidates(self, table: str) -> list[str]:
        """Names to try for `table`, the Unity Catalog name first."""
        return [self.qualified(table), self.local_qualified(table)]


def _quote(name: str) -> str:
    return f"`{name}`"
