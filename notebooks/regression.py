# Databricks notebook source
# MAGIC %md
# MAGIC # trace2eval: regression
# MAGIC Runs the living suite's `run_eval.py --agent <agent>` against a candidate version of the agent and compares it with the production answers, row by row. Fails the task (and the run, so on_failure alerts fire) on a regression or when the candidate cannot be evaluated.
# MAGIC
# MAGIC Same as `trace2eval compare <volume>/suite --agent <agent>`. Parameters arrive as widgets; no logic lives here.

# COMMAND ----------

from trace2eval.bundle.job_tasks import REGRESSION_PARAMETERS, run_regression

params = {name: dbutils.widgets.get(name) for name in REGRESSION_PARAMETERS}

# COMMAND ----------

values = run_regression(params, dbutils)

# COMMAND ----------

for key, value in values.items():
    dbutils.jobs.taskValues.set(key=key, value=value)
