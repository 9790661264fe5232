"""A local stand-in for the `dbutils` a notebook task sees on Databricks.

Only what job tasks use: widgets (job and task parameters), task values (set, and get from
upstream tasks), secrets (not available locally: a clear error), and `notebook.exit`. It behaves
like the real one where a difference would hide a bug: reading an undefined widget fails, task
values must be JSON and at most 48 KiB, reading a missing task value without a default fails.
"""

from __future__ import annotations

import json
from typing import Any

MAX_TASK_VALUE_BYTES = 48 * 1024


class InputWidgetNotDefined(Exception):
    pass


class NotebookExit(Exception):
    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


class _Widgets:
    def __init__(self, values: dict[str, str]):
        self._values = dict(values)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        return self._values[name]

    def getAll(self) -> dict[str, str]:  # noqa: N802 (dbutils' own name)
        return dict(self._values)

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._values.setdefault(name, defaultValue)  # a job parameter wins over the notebook default


class _TaskValues:
    def __init__(self, task_key: str, upstream: dict[str, dict[str, Any]]):
        self._task_key = task_key
        self._upstream = upstream
        self.published: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(f"task value {key!r} is not JSON-serializable: {type(value).__name__}") from None
        if len(encoded.encode()) > MAX_TASK_VALUE_BYTES:
            raise ValueError(f"task value {key!r} is {len(encoded.encode())} bytes; the limit is 48 KiB")
        self.published[key] = value

    def get(self, taskKey: str, key: str, default: Any = None, debugValue: Any = None) -> Any:  # noqa: N803
        values = self._upstream.get(taskKey)
        if values is None:
            raise ValueError(f"task {taskKey!r} has not run before {self._task_key!r} (is it in depends_on?)")
        if key in values:
            return values[key]
        if default is not None:
            return default
        raise ValueError(f"task {taskKey!r} did not set a task value {key!r}")


class _Jobs:
    def __init__(self, task_values: _TaskValues):
        self.taskValues = task_values  # noqa: N815


class _Secrets:
    def get(self, scope: str, key: str) -> str:
        raise RuntimeError(
            f"secret scope {scope!r} is not available in a local run; set the value as an "
            "environment variable instead (e.g. ANTHROPIC_API_KEY)"
        )

    def list(self, scope: str) -> list:
        return []


class _Notebook:
    def exit(self, value: str = "") -> None:
        raise NotebookExit(str(value))


class LocalDbutils:
    def __init__(self, widgets: dict[str, str], task_key: str, upstream: dict[str, dict[str, Any]]):
        self.widgets = _Widgets(widgets)
        self.jobs = _Jobs(_TaskValues(task_key, upstream))
        self.secrets = _Secrets()
        self.notebook = _Notebook()

    @property
    def published(self) -> dict[str, Any]:
        return self.jobs.taskValues.published
