# Databricks notebook source
# MAGIC %md
# MAGIC # trace2eval: initializer
# MAGIC Reads the experiment's traces past the suite's watermark, analyzes them and creates the session folder `<volume>/sessions/<run_id>/` (starting from the living suite in `<volume>/suite/`).
# MAGIC
# MAGIC Same as `trace2eval task initializer --session <volume>/sessions/<run_id>`. Parameters arrive as widgets (job parameters plus the task's `run_id`); no logic lives here.

# COMMAND ----------

from trace2eval.bundle.job_tasks import PARAMETERS, run_job_task

params = {name: dbutils.widgets.get(name) for name in PARAMETERS}

# COMMAND ----------

values = run_job_task("initializer", params, dbutils)

# COMMAND ----------

for key, value in values.items():
    dbutils.jobs.taskValues.set(key=key, value=value)
