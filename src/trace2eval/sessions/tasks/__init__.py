"""One module per task. Each `run(session)` reads state files, writes its outputs atomically and
returns a small summary for `eval_tasks.json`."""
