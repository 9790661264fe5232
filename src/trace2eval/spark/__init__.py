"""The Spark engine: read an experiment's traces from Unity Catalog trace tables.

`--source uc:<catalog>.<schema>[.<table_prefix>]` routes the initializer and the dataset task here.
Per-trace digests are computed on the cluster by the same `digest_trace()` the local engine runs,
population aggregates are Spark DataFrame operations, and only a bounded, stratified sample of
digests reaches the driver.

pyspark is an optional dependency (`pip install 'trace2eval[spark]'`): nothing in this package
imports it at module level, so the package itself imports fine without it.
"""
