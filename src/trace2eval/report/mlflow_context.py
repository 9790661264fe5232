"""Point MLflow's global client at one tracking store for a block of calls, then put it back.

Some MLflow APIs (`mlflow.genai.datasets`, `EvaluationDataset.merge_records`) take no tracking
URI and use the process-wide one; setting it also exports MLFLOW_TRACKING_URI to child processes.
Both are restored afterwards so publishing never redirects anything else in the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    import mlflow

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    explicit = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(explicit)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before
