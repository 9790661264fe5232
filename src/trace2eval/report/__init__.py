"""The review experience: a report people want to open, and the session's results in MLflow.

`write_report(session)` renders report.html / report.md with pictures; `publish(session)` does
that and also logs the generation as an MLflow run and registers the dataset as an MLflow
evaluation dataset. The runner calls `publish` when a session finishes, pass or fail.
"""

from trace2eval.report.publish import PublishResult, publish
from trace2eval.report.render import ReportFiles, write_report

__all__ = ["PublishResult", "ReportFiles", "publish", "write_report"]
