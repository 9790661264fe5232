"""MLflow settings that must be in place before mlflow is imported anywhere in the process.

Each one fixes a measured problem on a local store (see README, "Why these settings").
"""

from __future__ import annotations

import os

SAFE_MLFLOW_ENV = {
    # Offline, MLflow otherwise tries to download a model catalogue and stalls ~8 s.
    "MLFLOW_MODEL_CATALOG_URI": "",
    # With the default pool, evaluate on sqlite drops rows ("QueuePool limit reached").
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
    # Written traces must be readable right away; async logging silently drops under load.
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    # 32 reader threads fight over the GIL on small machines: 1 is 1.5-2x faster.
    "MLFLOW_SEARCH_TRACES_MAX_THREADS": "1",
    "MLFLOW_SEARCH_TRACES_MAX_BATCH_SIZE": "100",
    # LiteLLM (which MLflow's judges use when it is installed) fetches a price list from the network
    # on import, with retries: offline, use the copy it ships.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Telemetry would try the network.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # MLflow's INFO lines ("Create SQLAlchemy engine ...") drown trace2eval's own progress.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}


def apply_safe_mlflow_env() -> None:
    """Set the defaults without overriding anything the user set explicitly."""
    for key, value in SAFE_MLFLOW_ENV.items():
        os.environ.setdefault(key, value)
