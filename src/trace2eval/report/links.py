"""Links into the MLflow UI: traces, runs, the experiment.

A tracking URI says where the data lives, not always where a person can look at it. An http(s)
tracking server serves its UI at the same address; Databricks serves it at the workspace URL. A
local sqlite store has no UI unless someone runs `mlflow ui`, so it gets links only when told the
UI address (`--ui-url` / TRACE2EVAL_UI_URL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from trace2eval.traces.redact import mask_uri

UI_URL_ENV = "TRACE2EVAL_UI_URL"


def safe_uri(uri: str | None) -> str:
    """The tracking URI as it may be shown: credentials in the authority part are removed."""
    if not uri:
        return ""
    uri = mask_uri(uri)  # any scheme: postgresql://user:***@host
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and ("@" in parts.netloc):
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    if parts.scheme in ("http", "https") and parts.query:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return uri


def _databricks_host(tracking_uri: str) -> str | None:
    host = os.environ.get("DATABRICKS_HOST")
    if not host:
        try:  # the SDK's own resolution (profiles, notebook context); reads config, no network
            from databricks.sdk.core import Config

            profile = urlsplit(tracking_uri).netloc or None
            host = Config(profile=profile).host
        except Exception:
            host = None
    if not host:
        return None
    if not host.startswith(("http://", "https://")):
        host = "https://" + host
    return host.rstrip("/")


@dataclass(frozen=True)
class UiLinks:
    """Builds MLflow UI addresses for one experiment; every method returns None without a UI."""

    base: str | None
    experiment_id: str
    databricks: bool = False

    @classmethod
    def for_tracking_uri(cls, tracking_uri: str, experiment_id: str, ui_url: str | None = None) -> "UiLinks":
        ui_url = ui_url or os.environ.get(UI_URL_ENV) or None
        if ui_url and urlsplit(ui_url).scheme in ("http", "https"):
            return cls(ui_url.rstrip("/"), str(experiment_id), databricks="databricks" in tracking_uri)
        if tracking_uri.startswith(("http://", "https://")):
            return cls(safe_uri(tracking_uri).rstrip("/"), str(experiment_id))
        if tracking_uri.split(":", 1)[0] == "databricks":
            return cls(_databricks_host(tracking_uri), str(experiment_id), databricks=True)
        return cls(None, str(experiment_id))

    def _experiment_root(self) -> str | None:
        if not self.base:
            return None
        exp = quote(self.experiment_id, safe="")
        return f"{self.base}/ml/experiments/{exp}" if self.databricks else f"{self.base}/#/experiments/{exp}"

    def experiment(self) -> str | None:
        return self._experiment_root()

    def trace(self, trace_id: str) -> str | None:
        root = self._experiment_root()
        return f"{root}/traces?selectedEvaluationId={quote(str(trace_id), safe='')}" if root else None

    def run(self, run_id: str | None) -> str | None:
        root = self._experiment_root()
        return f"{root}/runs/{quote(str(run_id), safe='')}" if root and run_id else None
