# Databricks notebook source
# MAGIC %md
# MAGIC # trace2eval: monitor
# MAGIC Runs after a validated publish: keeps the production monitors (the suite's scorers registered on the experiment) in sync with the living suite, at `monitor_sample_rate` (0, the default, leaves them alone). With `fail_on_monitored_regression`, fails (alerting) when a monitored scorer's production pass rate fell beyond the gates' tolerance.
# MAGIC
# MAGIC Same as `trace2eval monitor <volume>/suite --sample-rate <monitor_sample_rate>`. Parameters arrive as widgets (job parameters plus the task's `run_id`); no logic lives here.

# COMMAND ----------

from trace2eval.bundle.job_tasks import PARAMETERS, run_monitor

params = {name: dbutils.widgets.get(name) for name in PARAMETERS}

# COMMAND ----------

values = run_monitor(params, dbutils)

# COMMAND ----------

for key, value in values.items():
    dbutils.jobs.taskValues.set(key=key, value=value)
