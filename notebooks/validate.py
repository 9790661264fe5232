# Databricks notebook source
# MAGIC %md
# MAGIC # trace2eval: validate
# MAGIC Runs `run_eval.py` for real and checks every scorer returned a value for every row; publishes the suite when it passes. Sets the task value `validation_status` that decides whether the fix task runs.
# MAGIC
# MAGIC Same as `trace2eval task validate --session <volume>/sessions/<run_id>`. Parameters arrive as widgets (job parameters plus the task's `run_id`); no logic lives here.

# COMMAND ----------

from trace2eval.bundle.job_tasks import PARAMETERS, run_job_task

params = {name: dbutils.widgets.get(name) for name in PARAMETERS}

# COMMAND ----------

values = run_job_task("validate", params, dbutils)

# COMMAND ----------

for key, value in values.items():
    dbutils.jobs.taskValues.set(key=key, value=value)
