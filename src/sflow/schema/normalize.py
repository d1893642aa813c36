"""Bring the accepted shorthands to one shape before validation, keeping the `LocMap`s aligned.

Named sections given as a list become `{name: entry}`; a plain variable value becomes `{value: ...}`;
`script`/`depends_on` given as one string become lists; `operator: srun` becomes `{name: srun}`;
`retries: 3` becomes `{count: 3}`; a single probe becomes a list of one. Doing this on the raw data
(rather than in pydantic validators) keeps validation in pydantic's compiled core and lets the
location tree follow every change of shape.
"""

from __future__ import annotations

from typing import Any

from sflow.errors import SpecError
from sflow.schema.locations import LocMap
from sflow.schema.suggest import suggest
from sflow.schema.yaml_source import Document

NAMED_SECTIONS = ("variables", "artifacts", "backends", "operators")
_SINGULAR = {"variables": "variable", "artifacts": "artifact", "backends": "backend", "operators": "operator"}
_TOP_KEYS = ("version", *NAMED_SECTIONS, "workflow")


def normalize_document(doc: Document) -> tuple[dict[str, Any], LocMap]:
    """The document's top-level mapping in canonical shape (mutated in place) and its locations."""
    data, locs = doc.data, doc.locs
    if data is None or locs is None:
        raise SpecError("file is empty", where=doc.file)
    if not isinstance(data, dict):
        raise SpecError("the top level must be a mapping with 'version' and 'workflow'", where=locs.where())
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(
                f"unknown top-level field '{key}'{suggest(key, _TOP_KEYS)}",
                where=locs.where_of(key),
                field=key,
            )
    for section in NAMED_SECTIONS:
        if section in data:
            named_section(data, locs, section, section)
    workflow = data.get("workflow")
    if isinstance(workflow, dict):
        wf_locs = locs.leaf("workflow")
        locs["workflow"] = wf_locs
        if "variables" in workflow:
            named_section(workflow, wf_locs, "variables", "workflow.variables")
        if "tasks" in workflow:
            _tasks(workflow, wf_locs)
    return data, locs


def named_section(parent: dict[str, Any], parent_locs: LocMap, key: str, path: str) -> None:
    """`parent[key]` as `{name: entry-with-name}` (from a list of entries or a mapping)."""
    value = parent[key]
    locs = parent_locs.leaf(key)
    singular = _SINGULAR[path.rpartition(".")[2]]
    out: dict[str, Any]
    if value is None:
        out, out_locs = {}, locs
    elif isinstance(value, list):
        out, out_locs = _from_list(value, locs, singular, path)
    elif isinstance(value, dict):
        out, out_locs = value, locs
        for name in value:
            _name_entry(value, locs, name, singular, path)
    else:
        raise SpecError(
            f"'{key}' must be a mapping of name to {singular}, or a list of {singular}s with 'name'",
            where=locs.where(),
            field=path,
        )
    parent[key] = out
    parent_locs[key] = out_locs


def _from_list(items: list[Any], locs: LocMap, singular: str, path: str) -> tuple[dict[str, Any], LocMap]:
    out: dict[str, Any] = {}
    out_locs = LocMap.at(locs.file, locs.line)
    for index, item in enumerate(items):
        item_locs = locs.leaf(index)
        if not isinstance(item, dict):
            raise SpecError(
                f"each {singular} must be a mapping with a 'name'",
                where=item_locs.where(),
                field=f"{path}[{index}]",
            )
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{singular} needs a 'name'", where=item_locs.where(), field=f"{path}[{index}]")
        if name in out:
            raise SpecError(
                f"duplicate {singular} '{name}' (first defined at {out_locs.where_of(name)})",
                where=item_locs.where_of("name"),
                field=f"{path}[{index}].name",
            )
        out[name] = item
        out_locs[name] = item_locs
    return out, out_locs


def _name_entry(section: dict[str, Any], locs: LocMap, name: str, singular: str, path: str) -> None:
    """Give a mapping-form entry its `name`; a plain variable value means `{value: ...}`."""
    entry = section[name]
    entry_locs = locs.leaf(name)
    if not isinstance(entry, dict):
        if singular != "variable":
            return  # validation reports "expected a mapping" at this line
        entry = section[name] = {"value": entry}
        entry_locs = LocMap.at(entry_locs.file, entry_locs.line, {"value": locs.get(name, entry_locs.line)})
    elif "name" in entry and entry["name"] != name:
        raise SpecError(
            f"{singular} name '{entry['name']}' does not match its key '{name}'",
            where=entry_locs.where_of("name"),
            field=f"{path}.{name}.name",
        )
    entry["name"] = name
    entry_locs.setdefault("name", LocMap.at(entry_locs.file, entry_locs.line))
    locs[name] = entry_locs


def _tasks(workflow: dict[str, Any], wf_locs: LocMap) -> None:
    tasks = workflow["tasks"]
    locs = wf_locs.leaf("tasks")
    if isinstance(tasks, dict):
        tasks, locs = _tasks_from_mapping(tasks, locs)
    if isinstance(tasks, list):
        for index, task in enumerate(tasks):
            if task.__class__ is dict:
                _task(task, locs, index)
    workflow["tasks"] = tasks
    wf_locs["tasks"] = locs


def _tasks_from_mapping(tasks: dict[str, Any], locs: LocMap) -> tuple[list[Any], LocMap]:
    """`tasks: {name: {...}}` -> a list of tasks with `name`."""
    out: list[Any] = []
    out_locs = LocMap.at(locs.file, locs.line)
    for name, task in tasks.items():
        task_locs = locs.leaf(name)
        if isinstance(task, dict):
            if "name" in task and task["name"] != name:
                raise SpecError(
                    f"task name '{task['name']}' does not match its key '{name}'",
                    where=task_locs.where_of("name"),
                    field=f"workflow.tasks.{name}.name",
                )
            task = {"name": name, **task}
            task_locs.setdefault("name", LocMap.at(task_locs.file, task_locs.line))
        out_locs[len(out)] = task_locs
        out.append(task)
    return out, out_locs


def _task(task: dict[str, Any], tasks_locs: LocMap, index: int) -> None:
    """Shorthands inside one task (this runs once per task, so it stays cheap)."""
    script = task.get("script")
    if script.__class__ is str:
        task["script"] = [script]
    depends = task.get("depends_on")
    if depends.__class__ is str:
        task["depends_on"] = [depends]
    operator = task.get("operator")
    if operator.__class__ is str:
        task["operator"] = {"name": operator}
    retries = task.get("retries")
    if retries.__class__ is int:
        task["retries"] = {"count": retries}
    if "variables" in task or "probes" in task:
        task_locs = tasks_locs.leaf(index)
        if "variables" in task:
            named_section(task, task_locs, "variables", f"workflow.tasks[{index}].variables")
        probes = task.get("probes")
        if probes.__class__ is dict:
            _probe_lists(probes, task_locs.leaf("probes"))


def _probe_lists(probes: dict[str, Any], locs: LocMap) -> None:
    for kind in ("readiness", "failure"):
        probe = probes.get(kind)
        if probe.__class__ is dict:
            probes[kind] = [probe]
            single = locs.leaf(kind)
            locs[kind] = LocMap.at(single.file, single.line, {0: single})
