"""Merge several workflow files into one document (later files win), keeping each value's origin.

Named entries (variables, artifacts, backends, operators, workflow variables) are replaced whole by
name; `workflow` scalar fields are replaced; `workflow.tasks` are concatenated, a task named like an
earlier file's task replacing it in place. Every replacement emits a `ComposeWarning` naming both
locations. Because locations travel with their subtrees (`LocMap`), errors still point at the file
that defined the value.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sflow.errors import SpecError
from sflow.schema.locations import LocMap
from sflow.schema.normalize import NAMED_SECTIONS, normalize_document
from sflow.schema.problems import Problems
from sflow.schema.yaml_source import read_document


class ComposeWarning(UserWarning):
    """A later workflow file replaced something an earlier one defined."""


Merged = tuple[dict[str, Any], LocMap]


def read_and_merge(files: Sequence[str | Path], problems: Problems | None = None) -> Merged:
    """Read, normalize and merge `files` in order.

    Mistakes in the shape of the sections go to `problems`, when given, for the caller to raise
    with what it finds later; without it they are raised here, all together.
    """
    if not files:
        raise SpecError("no workflow file given")
    found = Problems() if problems is None else problems
    merged: Merged | None = None
    for path in files:
        doc = normalize_document(read_document(path, found), found)
        merged = doc if merged is None else merge(merged, doc)
    assert merged is not None
    if problems is None:
        found.raise_if_any()
    return merged


def compose_documents(
    files: Sequence[str | Path],
    sets: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    missable_tasks: Sequence[str] = (),
) -> dict[str, Any]:
    """The merged plain data of `files` (with `--set`/`--artifact` applied), ready to dump as YAML.

    Dependencies on tasks no file defines that a `missable_tasks` name or glob matches are left
    out, so the result runs on its own the way the files ran together.
    """
    from sflow.schema.overrides import apply_artifacts, apply_sets

    data, locs = read_and_merge(files)
    apply_sets(data, locs, sets)
    apply_artifacts(data, locs, artifacts)
    plain = to_plain(data)
    if missable_tasks:
        drop_missing_dependencies(plain, missable_tasks)
    return plain


def is_missable(name: str, patterns: Sequence[str]) -> bool:
    """Whether an absent task may be left out: a `--missable-tasks` name or glob matches it."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def drop_missing_dependencies(data: dict[str, Any], patterns: Sequence[str]) -> None:
    """Remove `depends_on` entries naming absent tasks that `patterns` match (`--missable-tasks`)."""
    workflow = data.get("workflow")
    tasks = workflow.get("tasks") if isinstance(workflow, dict) else None
    if not isinstance(tasks, list):
        return
    present = {task.get("name") for task in tasks if isinstance(task, dict)}
    for task in tasks:
        deps = task.get("depends_on") if isinstance(task, dict) else None
        if isinstance(deps, str):
            deps = [deps]
        if isinstance(deps, list):
            task["depends_on"] = [dep for dep in deps if dep in present or not is_missable(dep, patterns)]


def merge(base: Merged, later: Merged) -> Merged:
    """Merge document `later` into `base` (mutating `base`)."""
    data, locs = base
    new, new_locs = later
    for key, value in new.items():
        if key in NAMED_SECTIONS and isinstance(data.get(key), dict) and isinstance(value, dict):
            _merge_named(data[key], locs.leaf(key), value, new_locs.leaf(key), key)
        elif key == "workflow" and isinstance(data.get(key), dict) and isinstance(value, dict):
            _merge_workflow(data[key], locs.leaf(key), value, new_locs.leaf(key))
        elif key == "version" and key in data and data[key] != value:
            raise SpecError(
                f"version {value!r} conflicts with version {data[key]!r} from {locs.where_of(key)}",
                where=new_locs.where_of(key),
                field="version",
            )
        else:
            data[key] = value
            locs[key] = new_locs.leaf(key)
    return data, locs


def _merge_named(
    section: dict[str, Any], locs: LocMap, new: dict[str, Any], new_locs: LocMap, path: str
) -> None:
    for name, entry in new.items():
        if name in section:
            _warn(f"{path}.{name}", new_locs.where_of(name), locs.where_of(name))
        section[name] = entry
        locs[name] = new_locs.leaf(name)


def _merge_workflow(wf: dict[str, Any], locs: LocMap, new: dict[str, Any], new_locs: LocMap) -> None:
    for key, value in new.items():
        if key == "variables" and isinstance(wf.get(key), dict) and isinstance(value, dict):
            _merge_named(wf[key], locs.leaf(key), value, new_locs.leaf(key), "workflow.variables")
        elif key == "tasks" and isinstance(wf.get(key), list) and isinstance(value, list):
            _merge_tasks(wf[key], locs.leaf(key), value, new_locs.leaf(key))
        else:
            if key in wf and wf[key] != value:
                _warn(f"workflow.{key}", new_locs.where_of(key), locs.where_of(key))
            wf[key] = value
            locs[key] = new_locs.leaf(key)


def _merge_tasks(tasks: list[Any], locs: LocMap, new: list[Any], new_locs: LocMap) -> None:
    """Append tasks; one named like a task of an earlier file replaces it in place."""
    earlier = {task["name"]: i for i, task in enumerate(tasks) if isinstance(task, dict) and "name" in task}
    for index, task in enumerate(new):
        name = task.get("name") if isinstance(task, dict) else None
        position = earlier.pop(name, None) if isinstance(name, str) else None
        if position is None:
            position = len(tasks)
            tasks.append(task)
        else:
            _warn(f"task '{name}'", new_locs.where_of(index), locs.where_of(position))
            tasks[position] = task
        locs[position] = new_locs.leaf(index)


def _warn(what: str, new_where: str, old_where: str) -> None:
    warnings.warn(f"{what} from {new_where} overrides the one from {old_where}", ComposeWarning, stacklevel=4)


def to_plain(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the `name` keys normalization copied into named entries (they are the mapping keys)."""
    out = dict(data)
    for section in NAMED_SECTIONS:
        if isinstance(out.get(section), dict):
            out[section] = _without_names(out[section])
    workflow = out.get("workflow")
    if isinstance(workflow, dict):
        workflow = out["workflow"] = dict(workflow)
        if isinstance(workflow.get("variables"), dict):
            workflow["variables"] = _without_names(workflow["variables"])
        if isinstance(workflow.get("tasks"), list):
            workflow["tasks"] = [_plain_task(task) for task in workflow["tasks"]]
    return out


def _without_names(section: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in entry.items() if k != "name"} if isinstance(entry, dict) else entry
        for name, entry in section.items()
    }


def _plain_task(task: Any) -> Any:
    if isinstance(task, dict):
        task = dict(task)
        if isinstance(task.get("variables"), dict):
            task["variables"] = _without_names(task["variables"])
        operator = task.get("operator")
        if isinstance(operator, dict) and list(operator) == ["name"]:
            task["operator"] = operator["name"]
    return task
