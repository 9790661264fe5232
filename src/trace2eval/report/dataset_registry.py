"""Register the session's dataset as an MLflow evaluation dataset (`mlflow.genai.datasets`).

One dataset per experiment, merged into by every session: MLflow deduplicates records by their
inputs, so merging the same rows again updates them instead of adding copies. Each record keeps
its source trace id (source type TRACE), so the MLflow UI links a record back to production.
Locally the dataset lives in the tracking store; on Databricks it is a Unity Catalog table.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from trace2eval.errors import Trace2EvalError
from trace2eval.report.mlflow_context import tracking_uri as using_tracking_uri
from trace2eval.sessions.files import read_json
from trace2eval.sessions.session import Session

DATASET_NAME_ENV = "TRACE2EVAL_DATASET_NAME"
MANAGED_TAG = "trace2eval.managed"
_UC_PART = re.compile(r"^[A-Za-z0-9_]+$")


def is_databricks(uri: str) -> bool:
    return uri.split(":", 1)[0] == "databricks"


def dataset_name(tracking_uri: str, experiment_id: str, session_dir: Path) -> str:
    """The dataset's name: TRACE2EVAL_DATASET_NAME, else derived from where the session lives.

    On Databricks the name is a Unity Catalog table `catalog.schema.table`; a session folder in a
    Volume (`/Volumes/<catalog>/<schema>/...`) puts the table in the same schema.
    """
    explicit = os.environ.get(DATASET_NAME_ENV, "").strip()
    table = f"trace2eval_eval_{re.sub(r'[^A-Za-z0-9_]', '_', str(experiment_id))}"
    if not is_databricks(tracking_uri):
        return explicit or f"trace2eval-experiment-{experiment_id}"
    if explicit:
        if len(explicit.split(".")) != 3 or not all(_UC_PART.match(p) for p in explicit.split(".")):
            raise Trace2EvalError(
                f"{DATASET_NAME_ENV}={explicit!r} is not a Unity Catalog table name",
                "use catalog.schema.table (letters, digits and underscores)",
            )
        return explicit
    parts = Path(session_dir).parts
    if len(parts) > 3 and parts[1] == "Volumes" and _UC_PART.match(parts[2]) and _UC_PART.match(parts[3]):
        return f"{parts[2]}.{parts[3]}.{table}"
    raise Trace2EvalError(
        "no Unity Catalog table for the evaluation dataset",
        f"set {DATASET_NAME_ENV}=catalog.schema.table, or keep sessions in a UC Volume",
    )


def records_from_rows(rows: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    """Dataset rows as MLflow records: inputs/outputs/expectations, the case as tags, the trace as source."""
    records = []
    for row in rows:
        meta = row.get("metadata") or {}
        inputs = row.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            inputs = {"request": inputs}
        tags = {
            "trace2eval.case_type": str(meta.get("case_type", "")),
            "trace2eval.findings": ",".join(map(str, meta.get("findings") or [])),
            "trace2eval.query_type": str(meta.get("query_type") or ""),
            "trace2eval.session": session_id,
        }
        record: dict[str, Any] = {"inputs": inputs, "outputs": row.get("outputs"), "tags": tags}
        if row.get("expectations"):
            record["expectations"] = row["expectations"]
        if meta.get("source_trace"):
            record["source"] = {"source_type": "TRACE", "source_data": {"trace_id": str(meta["source_trace"])}}
        records.append(record)
    return records


def _find_local(client, name: str, experiment_id: str, known_id: str | None):
    if known_id:
        try:
            return client.get_dataset(known_id)
        except Exception:
            pass  # deleted since: look it up by name or create it again
    quoted = name.replace("'", "''")
    found = client.search_datasets(
        experiment_ids=[str(experiment_id)],
        filter_string=f"name = '{quoted}'",
        max_results=10,
        order_by=["created_time ASC"],
    )
    return found[0] if found else None


def register_dataset(session: Session, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge this session's dataset rows into the experiment's evaluation dataset.

    Returns what to remember (name, dataset_id, counts). Raises Trace2EvalError when there is
    nothing to register or the name cannot be decided; MLflow errors propagate.
    """
    if not session.dataset_json.exists():
        raise Trace2EvalError("no dataset in this session yet", "run the dataset task first")
    rows = (read_json(session.dataset_json) or {}).get("rows") or []
    if not rows:
        raise Trace2EvalError("the session's dataset has no rows", "rerun the dataset task")
    config = session.config()
    name = dataset_name(config.tracking_uri, config.experiment_id, session.dir)
    records = records_from_rows(rows, session.id)
    known_id = (known or {}).get("dataset_id") if (known or {}).get("name") == name else None

    from mlflow.genai.datasets import EvaluationDataset, create_dataset, get_dataset

    with using_tracking_uri(config.tracking_uri):
        if is_databricks(config.tracking_uri):
            try:
                dataset = get_dataset(name=name)
            except Exception:
                dataset = create_dataset(name=name, experiment_id=[str(config.experiment_id)])
        else:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=config.tracking_uri)
            entity = _find_local(client, name, config.experiment_id, known_id)
            if entity is None:
                dataset = create_dataset(
                    name=name,
                    experiment_id=[str(config.experiment_id)],
                    tags={MANAGED_TAG: "true", "trace2eval.experiment_id": str(config.experiment_id)},
                )
            else:
                dataset = EvaluationDataset(entity)
        dataset.merge_records(records)
        total = len(dataset.to_df())
        dataset_id = getattr(dataset, "dataset_id", None)
    # MLflow keys a record by its inputs: two production traces with the same request (kept as
    # separate failure cases in the dataset) become one record, the later outputs winning.
    distinct = len({json.dumps(r["inputs"], sort_keys=True, default=str) for r in records})
    return {
        "name": name,
        "dataset_id": dataset_id,
        "records": total,
        "merged": len(records),
        "same_inputs_merged": len(records) - distinct,
        "linked_to_traces": sum("source" in r for r in records),
    }
