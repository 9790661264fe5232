"""Run one notebook task in this (fresh) process, the way a job cluster runs it.

    python -m trace2eval.bundle.local_notebook request.json

The request holds the notebook path, its widgets (job parameters pushed down plus the task's
`base_parameters`), the task values upstream tasks published, and where to write this task's
values. Code cells run in order in one namespace with `dbutils` defined; markdown and magic cells
are skipped. Exit 0 when the notebook finished (or called `dbutils.notebook.exit`), 1 when it raised.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from trace2eval.bundle.local_dbutils import LocalDbutils, NotebookExit
from trace2eval.bundle.notebooks import code_cells
from trace2eval.errors import Trace2EvalError


def run(request: dict) -> int:
    notebook = Path(request["notebook"])
    dbutils = LocalDbutils(request["widgets"], request["task_key"], request.get("upstream_values", {}))
    namespace = {"__name__": "__main__", "dbutils": dbutils}
    exit_value = error = None
    try:
        for i, source in enumerate(code_cells(notebook), start=1):
            exec(compile(source, f"{notebook.name} [cell {i}]", "exec"), namespace)  # noqa: S102 (our own notebook)
    except NotebookExit as done:
        exit_value = done.value
    except BaseException as exc:  # the task fails, as on Databricks, with the traceback in its log
        traceback.print_exc()
        # trace2eval's own errors are written for people; anything else keeps its type.
        error = str(exc) if isinstance(exc, Trace2EvalError) else f"{type(exc).__name__}: {exc}"
    Path(request["values_out"]).write_text(
        json.dumps({"values": dbutils.published, "exit_value": exit_value, "error": error})
    )
    return 0 if error is None else 1


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    request = json.loads(Path(args[0]).read_text())
    return run(request)


if __name__ == "__main__":
    sys.exit(main())
