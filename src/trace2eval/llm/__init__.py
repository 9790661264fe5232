"""LLM sessions: Claude (Databricks Foundation Model API or Anthropic API) refines the suite.

The deterministic engine writes every artifact first; the runner then calls
`refine.refine(session, task)`, which gives the model tools and the mlflow-evaluation skill,
validates everything it proposes, and keeps only what passes. Modules: `clients` (endpoints and
auth), `calls` (retries), `loop` (tool use), `tools/`, `names` (scorer names), `samplerun` (code
scorers on sample rows), `budget`, `ledger`, `tracing`, `prompts`, `skills`, `apply`, `refine`.

This layer reads and writes the session's state through `trace2eval.state` and never imports a
task; the fix session validates through a callable the runner hands it.

Importing this package is cheap: the SDKs load only when a session actually runs.
"""
