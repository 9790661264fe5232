# Databricks notebook source
# MAGIC %md
# MAGIC # trace2eval: scorers
# MAGIC Adds code scorers and LLM judges for new findings (`evaluation/scorers.py`); an edited `scorers.py` is kept and the new version written beside it as `scorers.py.new`.
# MAGIC
# MAGIC Same as `trace2eval task scorers --session <volume>/sessions/<run_id>`. Parameters arrive as widgets (job parameters plus the task's `run_id`); no logic lives here.

# COMMAND ----------

from trace2eval.bundle.job_tasks import PARAMETERS, run_job_task

params = {name: dbutils.widgets.get(name) for name in PARAMETERS}

# COMMAND ----------

values = run_job_task("scorers", params, dbutils)

# COMMAND ----------

for key, value in values.items():
    dbutils.jobs.taskValues.set(key=key, value=value)
