"""`--filter` and `--since` on Unity Catalog trace tables.

The MLflow source passes `--filter` to MLflow's trace search; here the same syntax is translated
into Spark predicates over each trace's root span (status, times, name), its tags and metadata
(from the trace-metadata view) and its spans ("some span has ..."). Supported:

    attributes.status | attributes.execution_time_ms | attributes.timestamp_ms | attributes.name
    tags.<key> | metadata.<key> | span.type | span.name | span.status
    operators = != < <= > >= LIKE ILIKE, clauses joined by AND

(`trace.` works as a synonym of `attributes.`; backquote keys with dots: tags.`mlflow.user`.)
Anything else is a clear error rather than a silently different result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trace2eval.errors import SourceError

_CLAUSE = re.compile(
    r"""^\s*(?P<field>[A-Za-z_]+(?:\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.\-]+))?)\s*
        (?P<op>!=|<=|>=|=|<|>|\bILIKE\b|\bLIKE\b)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SPLIT_AND = re.compile(r"\s+AND\s+(?=(?:[^'\"`]|'[^']*'|\"[^\"]*\"|`[^`]*`)*$)", re.IGNORECASE)
_HELP = (
    "supported on uc: sources: attributes.status / execution_time_ms / timestamp_ms / name, tags.<key>, "
    "metadata.<key>, span.type / name / status; = != < <= > >= LIKE ILIKE; clauses joined by AND"
)


@dataclass(frozen=True)
class Clause:
    scope: str  # trace | tag | metadata | span
    key: str
    op: str
    value: object


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow-style filter string, or a SourceError saying what is unsupported."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _SPLIT_AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise SourceError(f"cannot read the filter clause {part.strip()!r}", _HELP)
        field_, op, raw = match.group("field"), match.group("op").upper(), match.group("value")
        value: object = raw[1:-1].replace("\\'", "'").replace('\\"', '"') if raw[0] in "'\"" else float(raw)
        prefix, _, key = field_.partition(".")
        prefix, key = prefix.lower(), key.strip('`"')
        if prefix in ("attributes", "trace") or not key:
            key = (key or prefix).lower()
            if key not in ("status", "execution_time_ms", "timestamp_ms", "name"):
                raise SourceError(f"unsupported filter field {field_!r}", _HELP)
            scope = "trace"
        elif prefix in ("tags", "tag"):
            scope = "tag"
        elif prefix in ("metadata", "request_metadata"):
            scope = "metadata"
        elif prefix == "span":
            key = key.lower()
            if key not in ("type", "name", "status"):
                raise SourceError(f"unsupported filter field {field_!r}", _HELP)
            scope = "span"
        else:
            raise SourceError(f"unsupported filter field {field_!r}", _HELP)
        numeric = key in ("execution_time_ms", "timestamp_ms") and scope == "trace"
        if numeric and not isinstance(value, float):
            raise SourceError(f"{field_} compares with a number, not {raw}", _HELP)
        if not numeric and isinstance(value, float):
            value = raw
        if not numeric and op in ("<", "<=", ">", ">="):
            raise SourceError(f"{field_} supports = != LIKE ILIKE, not {op}", _HELP)
        if numeric and op in ("LIKE", "ILIKE"):
            raise SourceError(f"{field_} supports = != < <= > >=, not {op}", _HELP)
        clauses.append(Clause(scope, key, op, value))
    return clauses


def _compare(column, op: str, value):
    from pyspark.sql import functions as F

    if op == "=":
        return column == F.lit(value)
    if op == "!=":
        return column != F.lit(value)
    if op == "<":
        return column < F.lit(value)
    if op == "<=":
        return column <= F.lit(value)
    if op == ">":
        return column > F.lit(value)
    if op == ">=":
        return column >= F.lit(value)
    if op == "LIKE":
        return column.like(str(value))
    return F.lower(column).like(str(value).lower())  # ILIKE


def _attribute_text(attributes, key: str):
    """A span attribute as text: MLflow stores JSON (a quoted string), other clients plain text."""
    from pyspark.sql import functions as F

    raw = F.get_json_object(attributes, f"$['{key}']")
    return F.coalesce(F.get_json_object(raw, "$"), raw)


def status_expr(code):
    """STATUS_CODE_ERROR / ERROR / 2 → ERROR; STATUS_CODE_OK / OK / 1 → OK; else UNSET."""
    from pyspark.sql import functions as F

    text = F.regexp_replace(F.upper(F.trim(code)), "^STATUS_CODE_", "")
    return F.when(text.isin("OK", "1"), "OK").when(text.isin("ERROR", "2"), "ERROR").otherwise("UNSET")


def selected_trace_ids(tables, filter_string: str | None, since_ms: int | None):
    """A DataFrame of the OpenTelemetry trace ids to analyze, or None for every trace."""
    from pyspark.sql import functions as F

    clauses = parse_filter(filter_string)
    if not clauses and since_ms is None:
        return None
    spans = tables.spans
    roots = (
        spans.where(F.col("parent_span_id").isNull())
        .groupBy("trace_id")
        .agg(F.min(F.struct("start_time_unix_nano", "end_time_unix_nano", "status_code", "name")).alias("r"))
    )
    start, end = F.col("r.start_time_unix_nano"), F.col("r.end_time_unix_nano")
    status = status_expr(F.col("r.status_code"))
    trace = {
        "timestamp_ms": F.floor(start / F.lit(1_000_000)),
        "execution_time_ms": F.floor((end - start) / F.lit(1_000_000)),
        "status": F.when(end.isNull(), "IN_PROGRESS").when(status == "ERROR", "ERROR").otherwise("OK"),
        "name": F.col("r.name"),
    }
    selected = roots
    if since_ms is not None:
        selected = selected.where(trace["timestamp_ms"] > F.lit(int(since_ms)))
    needs_metadata = [c for c in clauses if c.scope in ("tag", "metadata")]
    if needs_metadata:
        if tables.metadata is None:
            raise SourceError(
                f"filtering on {needs_metadata[0].scope} needs the trace-metadata view "
                f"{tables.location.metadata_table}, which was not found",
                "filter on attributes.* or span.* instead, or grant SELECT on the view",
            )
        meta = tables.metadata.select(
            F.col("otel_trace_id").alias("trace_id"),
            F.from_json("tags", "map<string,string>").alias("_tags"),
            F.from_json("trace_metadata", "map<string,string>").alias("_meta"),
        )
        selected = selected.join(meta, on="trace_id", how="left")
    for c in clauses:
        if c.scope == "trace":
            selected = selected.where(_compare(trace[c.key], c.op, c.value))
        elif c.scope in ("tag", "metadata"):
            column = F.col("_tags" if c.scope == "tag" else "_meta")[c.key]
            selected = selected.where(_compare(column, c.op, c.value))
    for c in clauses:
        if c.scope == "span":
            column = {
                "type": _attribute_text(F.col("attributes"), "mlflow.spanType"),
                "name": F.col("name"),
                "status": status_expr(F.col("status_code")),
            }[c.key]
            value = str(c.value).upper() if c.key in ("status", "type") and c.op in ("=", "!=") else c.value
            matching = spans.where(_compare(column, c.op, value)).select("trace_id").distinct()
            selected = selected.join(matching, on="trace_id", how="left_semi")
    return selected.select("trace_id")
