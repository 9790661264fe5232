"""The bundle's configuration as the Databricks CLI would deploy it, read offline.

`databricks.yml` plus its `include:` files, merged the way the CLI merges them (maps merge, lists
concatenate, a job's tasks merge by `task_key`), with one target's overrides applied and every
`${...}` reference resolved. Relative paths inside a resource file (notebooks, wheels) are relative
to that file, as for the CLI; here they become absolute local paths.
"""

from __future__ import annotations

import copy
import getpass
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trace2eval.errors import Trace2EvalError

BUNDLE_FILE = "databricks.yml"
_REF = re.compile(r"\$\{([A-Za-z_][\w.\-\[\]]*)\}")
# Keys whose string values are paths relative to the file that holds them.
_PATH_KEYS = {"notebook_path", "whl", "python_file", "path"}


class BundleError(Trace2EvalError):
    """The bundle configuration cannot be read or resolved."""


@dataclass
class Bundle:
    root: Path
    name: str
    target: str
    mode: str | None
    variables: dict[str, Any]
    config: dict[str, Any]  # the merged, resolved configuration tree
    files: list[Path] = field(default_factory=list)

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return self.config.get("resources", {}).get("jobs", {})

    def job(self, key: str | None = None) -> tuple[str, dict[str, Any]]:
        jobs = self.jobs
        if not jobs:
            raise BundleError(
                f"bundle {self.name!r} defines no jobs", "add one under resources/ (e.g. resources/<key>.job.yml)"
            )
        if key is None:
            if len(jobs) > 1:
                raise BundleError(
                    f"bundle {self.name!r} has {len(jobs)} jobs", f"pick one with --job ({', '.join(jobs)})"
                )
            key = next(iter(jobs))
        if key not in jobs:
            raise BundleError(f"no job {key!r} in bundle {self.name!r}", f"jobs are: {', '.join(jobs)}")
        return key, jobs[key]


def find_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` that holds databricks.yml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / BUNDLE_FILE).is_file():
            return folder
    raise BundleError(f"no {BUNDLE_FILE} in {here} or above", "run from the project folder or pass --bundle-root")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})", "fix the file") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path} ({exc.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleError(f"{path} must hold a mapping at the top level")
    return data


def merge(base: Any, override: Any, path: tuple[str, ...] = ()) -> Any:
    """The CLI's merge: maps merge key by key, lists concatenate, a job's tasks merge by task_key."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value, (*path, key)) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(override, list):
        if path and path[-1] == "tasks":
            return _merge_by_key(base, override, "task_key", path)
        if path and path[-1] == "job_clusters":
            return _merge_by_key(base, override, "job_cluster_key", path)
        return base + copy.deepcopy(override)
    return copy.deepcopy(override)


def _merge_by_key(base: list, override: list, key: str, path: tuple[str, ...]) -> list:
    out = [copy.deepcopy(item) for item in base]
    index = {item.get(key): i for i, item in enumerate(out) if isinstance(item, dict)}
    for item in override:
        k = item.get(key) if isinstance(item, dict) else None
        if k in index:
            out[index[k]] = merge(out[index[k]], item, path)
        else:
            out.append(copy.deepcopy(item))
    return out


def _absolutize(node: Any, base: Path, key: str | None = None) -> Any:
    """Make relative paths in a resource file absolute, relative to that file."""
    if isinstance(node, dict):
        return {k: _absolutize(v, base, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_absolutize(v, base, key) for v in node]
    if (
        key in _PATH_KEYS
        and isinstance(node, str)
        and not node.startswith(("/", "${", "dbfs:", "s3:", "abfss:", "gs:"))
    ):
        if "://" not in node:
            return str((base / node).resolve())
    return node


def load(root: str | Path | None = None, target: str | None = None, overrides: dict[str, Any] | None = None) -> Bundle:
    """Read, merge and resolve the bundle at `root` for `target` (default: the target marked default).

    `overrides` are `--var name=value` values; `BUNDLE_VAR_<name>` environment variables work too,
    as for the Databricks CLI.
    """
    root = find_root(root) if root is None else Path(root).resolve()
    main_file = root / BUNDLE_FILE
    if not main_file.is_file():
        raise BundleError(f"no {BUNDLE_FILE} in {root}", "pass the project folder as --bundle-root")
    config = _absolutize(read_yaml(main_file), root)
    files = [main_file]
    for pattern in config.get("include", []) or []:
        matches = sorted(glob.glob(str(root / pattern), recursive=True))
        if not matches:
            raise BundleError(f"include pattern {pattern!r} in {main_file} matches no file", "fix the pattern")
        for match in matches:
            path = Path(match)
            part = read_yaml(path)
            unknown = set(part) - {"resources", "variables", "targets", "artifacts", "sync", "permissions"}
            if unknown:
                raise BundleError(f"{path} has top-level keys the bundle does not merge: {sorted(unknown)}")
            config = merge(config, _absolutize(part, path.parent))
            files.append(path)

    name = (config.get("bundle") or {}).get("name")
    if not name:
        raise BundleError(f"{main_file} has no bundle.name", "add `bundle: {name: <name>}`")
    targets = config.get("targets") or {}
    if target is None:
        defaults = [t for t, spec in targets.items() if (spec or {}).get("default")]
        target = defaults[0] if defaults else (next(iter(targets)) if len(targets) == 1 else None)
        if target is None:
            raise BundleError("no default target", f"pass --target ({', '.join(targets) or 'none defined'})")
    if targets and target not in targets:
        raise BundleError(f"no target {target!r} in {main_file}", f"targets are: {', '.join(targets)}")
    spec = targets.get(target) or {}

    tree = {k: v for k, v in config.items() if k not in ("targets", "include")}
    for section in ("resources", "artifacts", "workspace", "run_as", "permissions", "presets", "sync"):
        if section in spec:
            tree[section] = merge(tree.get(section, {} if section != "permissions" else []), spec[section], (section,))
    mode = spec.get("mode")
    variables = _variable_values(config.get("variables") or {}, spec.get("variables") or {}, overrides or {})
    context = {
        "bundle": {"name": name, "target": target},
        "workspace": {
            "current_user": {"userName": getpass.getuser(), "short_name": getpass.getuser()},
            "root_path": str(root),
            "file_path": str(root),
        },
    }
    resolved = _apply_mode(_resolve(tree, variables, context), mode, getpass.getuser())
    run_as = resolved.get("run_as") or {}
    empty = [key for key, value in run_as.items() if not str(value or "").strip()]
    if empty:
        refs = sorted(set(_REF.findall(str((spec.get("run_as") or config.get("run_as") or {})))))
        raise BundleError(
            f"target {target!r} runs the job as {empty[0]} but it is empty",
            f"set it: --var {refs[0].removeprefix('var.')}=<application id>" if refs else "set run_as in the target",
        )
    return Bundle(root=root, name=name, target=target, mode=mode, variables=variables, config=resolved, files=files)


def _apply_mode(tree: dict[str, Any], mode: str | None, user: str) -> dict[str, Any]:
    """What `mode: development` does on deploy: prefix names with the user, pause every schedule."""
    if mode not in (None, "development", "production"):
        raise BundleError(f"unknown mode {mode!r}", "use mode: development or mode: production")
    if mode == "development":
        for job in tree.get("resources", {}).get("jobs", {}).values():
            job["name"] = f"[dev {user}] {job.get('name', '')}"
            for key in ("schedule", "trigger", "continuous"):
                if isinstance(job.get(key), dict):
                    job[key]["pause_status"] = "PAUSED"
    return tree


def _variable_values(declared: dict[str, Any], target: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(declared)
    if unknown:
        raise BundleError(
            f"unknown variable(s) {sorted(unknown)}", f"declared variables are: {', '.join(sorted(declared))}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if "lookup" in spec:
            values[name] = f"<lookup:{name}>"  # needs a workspace; only the deployed job resolves it
        if name in overrides:
            values[name] = overrides[name]
        elif f"BUNDLE_VAR_{name}" in os.environ:
            values[name] = os.environ[f"BUNDLE_VAR_{name}"]
        elif name in target:
            value = target[name]
            values[name] = value.get("default") if isinstance(value, dict) and spec.get("type") != "complex" else value
        elif "default" in spec:
            values[name] = spec["default"]
        elif name not in values:
            raise BundleError(f"variable {name!r} has no value", f"pass --var {name}=<value> or set it in the target")
    return values


def _lookup(name: str, variables: dict[str, Any], context: dict[str, Any]) -> Any:
    parts = name.split(".")
    if parts[0] == "var":
        if len(parts) != 2 or parts[1] not in variables:
            raise BundleError(
                f"unknown reference ${{{name}}}", f"declared variables are: {', '.join(sorted(variables))}"
            )
        return variables[parts[1]]
    node: Any = context
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            raise BundleError(
                f"reference ${{{name}}} cannot be resolved offline",
                "use ${var.*}, ${bundle.name}, ${bundle.target} or ${workspace.current_user.userName}",
            )
        node = node[part]
    return node


def _resolve(node: Any, variables: dict[str, Any], context: dict[str, Any], depth: int = 0) -> Any:
    if depth > 10:
        raise BundleError("variables refer to each other in a loop")
    if isinstance(node, dict):
        return {k: _resolve(v, variables, context, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, variables, context, depth) for v in node]
    if not isinstance(node, str) or "${" not in node:
        return node
    whole = _REF.fullmatch(node)
    if whole:  # a whole-value reference keeps the value's type (lists for complex variables)
        return _resolve(_lookup(whole.group(1), variables, context), variables, context, depth + 1)
    return _REF.sub(
        lambda m: str(_resolve(_lookup(m.group(1), variables, context), variables, context, depth + 1)), node
    )


def parse_assignments(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """`name=value` pairs from repeated command-line flags."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BundleError(f"cannot read {flag} {pair!r}", f"use {flag} name=value")
        out[name.strip()] = value
    return out
