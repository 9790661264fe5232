"""The Databricks Asset Bundle, offline: read its job definition, run its task graph locally, and the
library functions its notebooks call (`job_tasks.run_job_task`)."""
