"""Bring the accepted shorthands to one shape before validation, keeping the `LocMap`s aligned.

Named sections given as a list become `{name: entry}`; a plain variable value becomes `{value: ...}`;
`script`/`depends_on` given as one string become lists; `operator: srun` becomes `{name: srun}`;
`retries: 3` becomes `{count: 3}`; a single probe becomes a list of one. Doing this on the raw data
(rather than in the models) keeps validation in `msgspec.convert`'s single pass and lets the
location tree follow every change of shape. A mistake found here goes to the load's `Problems`
and normalization goes on without the faulty part, so one report names every mistake.
"""

from __future__ import annotations

import functools
import linecache
import re
import warnings
from typing import Any

from sflow.errors import SpecError
from sflow.schema.locations import LocMap
from sflow.schema.problems import Problems
from sflow.schema.suggest import closest, suggest
from sflow.schema.yaml_source import Document

NAMED_SECTIONS = ("variables", "artifacts", "backends", "operators", "storage")
_SINGULAR = {
    "variables": "variable",
    "artifacts": "artifact",
    "backends": "backend",
    "operators": "operator",
    "storage": "storage target",
}
_TOP_KEYS = ("version", *NAMED_SECTIONS, "workflow")


def normalize_document(doc: Document, problems: Problems) -> tuple[dict[str, Any], LocMap]:
    """The document's top-level mapping in canonical shape (mutated in place) and its locations."""
    data, locs = doc.data, doc.locs
    if data is None or locs is None:
        raise SpecError("file is empty", where=doc.file)
    if not isinstance(data, dict):
        raise SpecError("the top level must be a mapping with 'version' and 'workflow'", where=locs.where())
    for key in [key for key in data if key not in _TOP_KEYS]:
        instead = closest(key, _TOP_KEYS)
        problems.add(
            SpecError(
                f"unknown top-level field '{key}'{suggest(key, _TOP_KEYS)}",
                where=locs.where_of(key),
                field=key,
            ),
            suggests=instead if instead not in data else None,
        )
        del data[key]
    for section in NAMED_SECTIONS:
        if section in data:
            named_section(data, locs, section, section, problems)
    workflow = data.get("workflow")
    if isinstance(workflow, dict):
        wf_locs = locs.leaf("workflow")
        locs["workflow"] = wf_locs
        if "variables" in workflow:
            named_section(workflow, wf_locs, "variables", "workflow.variables", problems)
        if "tasks" in workflow:
            _tasks(workflow, wf_locs, problems)
    return data, locs


def named_section(
    parent: dict[str, Any], parent_locs: LocMap, key: str, path: str, problems: Problems
) -> None:
    """`parent[key]` as `{name: entry-with-name}` (from a list of entries or a mapping)."""
    value = parent[key]
    locs = parent_locs.leaf(key)
    singular = _SINGULAR[path.rpartition(".")[2]]
    out: dict[str, Any]
    if value is None:
        out, out_locs = {}, locs
    elif isinstance(value, list):
        out, out_locs = _from_list(value, locs, singular, path, problems)
    elif isinstance(value, dict):
        out, out_locs = value, locs
        for name in value:
            _name_entry(value, locs, name, singular, path, problems)
    else:
        problems.add(
            SpecError(
                f"'{key}' must be a mapping of name to {singular}, or a list of {singular}s with 'name'",
                where=locs.where(),
                field=path,
            )
        )
        out, out_locs = {}, locs
    parent[key] = out
    parent_locs[key] = out_locs


def _from_list(
    items: list[Any], locs: LocMap, singular: str, path: str, problems: Problems
) -> tuple[dict[str, Any], LocMap]:
    out: dict[str, Any] = {}
    out_locs = LocMap.at(locs.file, locs.line)
    for index, item in enumerate(items):
        item_locs = locs.leaf(index)
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            message, where, field = f"each {singular} must be a mapping with a 'name'", item_locs.where(), ""
        elif not isinstance(name, str) or not name:
            message, where, field = f"{singular} needs a 'name'", item_locs.where(), ""
        elif name in out:
            message = f"duplicate {singular} '{name}' (first defined at {out_locs.where_of(name)})"
            where, field = item_locs.where_of("name"), ".name"
        else:
            out[name] = item
            out_locs[name] = item_locs
            continue
        problems.add(SpecError(message, where=where, field=f"{path}[{index}]{field}"))
    return out, out_locs


def _name_entry(
    section: dict[str, Any], locs: LocMap, name: str, singular: str, path: str, problems: Problems
) -> None:
    """Give a mapping-form entry its `name`; a plain variable value means `{value: ...}`."""
    entry = section[name]
    entry_locs = locs.leaf(name)
    if not isinstance(entry, dict):
        if singular != "variable":
            return  # validation reports "expected a mapping" at this line
        entry = section[name] = {"value": entry}
        entry_locs = LocMap.at(entry_locs.file, entry_locs.line, {"value": locs.get(name, entry_locs.line)})
    elif "name" in entry and entry["name"] != name:
        problems.add(
            SpecError(
                f"{singular} name '{entry['name']}' does not match its key '{name}'",
                where=entry_locs.where_of("name"),
                field=f"{path}.{name}.name",
            )
        )
    entry["name"] = name
    entry_locs.setdefault("name", LocMap.at(entry_locs.file, entry_locs.line))
    locs[name] = entry_locs


def _tasks(workflow: dict[str, Any], wf_locs: LocMap, problems: Problems) -> None:
    tasks = workflow["tasks"]
    locs = wf_locs.leaf("tasks")
    if isinstance(tasks, dict):
        tasks, locs = _tasks_from_mapping(tasks, locs, problems)
    if isinstance(tasks, list):
        for index, task in enumerate(tasks):
            if task.__class__ is dict:
                _task(task, locs, index, problems)
    workflow["tasks"] = tasks
    wf_locs["tasks"] = locs


def _tasks_from_mapping(tasks: dict[str, Any], locs: LocMap, problems: Problems) -> tuple[list[Any], LocMap]:
    """`tasks: {name: {...}}` -> a list of tasks with `name`."""
    out: list[Any] = []
    out_locs = LocMap.at(locs.file, locs.line)
    for name, task in tasks.items():
        task_locs = locs.leaf(name)
        if isinstance(task, dict):
            if "name" in task and task["name"] != name:
                problems.add(
                    SpecError(
                        f"task name '{task['name']}' does not match its key '{name}'",
                        where=task_locs.where_of("name"),
                        field=f"workflow.tasks.{name}.name",
                    )
                )
            task = {**task, "name": name} if "name" in task else {"name": name, **task}
            task_locs.setdefault("name", LocMap.at(task_locs.file, task_locs.line))
        out_locs[len(out)] = task_locs
        out.append(task)
    return out, out_locs


class ScriptLineWarning(UserWarning):
    """A script line YAML read as a mapping (`- echo "GPUs: $X"`), taken as the line written."""


def _task(task: dict[str, Any], tasks_locs: LocMap, index: int, problems: Problems) -> None:
    """Shorthands inside one task (this runs once per task, so it stays cheap)."""
    script = task.get("script")
    if script.__class__ is str:
        task["script"] = [script]
    elif script.__class__ is list and dict in map(type, script):
        _script_lines(script, tasks_locs.leaf(index).leaf("script"))
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
            named_section(task, task_locs, "variables", f"workflow.tasks[{index}].variables", problems)
        probes = task.get("probes")
        if probes.__class__ is dict:
            _probe_lists(probes, task_locs.leaf("probes"))


def _script_lines(script: list[Any], locs: LocMap) -> None:
    """A line like `- echo "GPUs: $X"` is, to YAML, the mapping `{'echo "GPUs': '$X"'}`: a one-entry
    mapping whose value is not a container is taken as the line written there, with a warning."""
    for position, line in enumerate(script):
        if line.__class__ is not dict or len(line) != 1:
            continue
        key, value = next(iter(line.items()))
        if isinstance(value, (dict, list)):
            continue
        where = locs.leaf(position)
        script[position] = _written_line(where.file, where.line, str(key), value)
        warnings.warn(
            f"{where.where()}: script line read as a mapping by YAML; taken as the line "
            f"{script[position]!r} (quote the whole line to say so)",
            ScriptLineWarning,
            stacklevel=2,
        )


@functools.cache
def _trailing_comment() -> re.Pattern[str]:
    """Compiled at the first warning that quotes a line: most files get none."""
    return re.compile(r"\s+#[^\"']*$")


def _written_line(file: str, line: int, key: str, value: Any) -> str:
    """The line as the file has it (its comment left out); rebuilt from key and value otherwise."""
    text = linecache.getline(file, line).strip() if line else ""
    text = text[1:].lstrip() if text.startswith("-") else text
    if text.startswith(f"{key}:"):
        return _trailing_comment().sub("", text)
    return f"{key}: {'' if value is None else value}".rstrip()


def _probe_lists(probes: dict[str, Any], locs: LocMap) -> None:
    for kind in ("readiness", "failure"):
        probe = probes.get(kind)
        if probe.__class__ is dict:
            probes[kind] = [probe]
            single = locs.leaf(kind)
            locs[kind] = LocMap.at(single.file, single.line, {0: single})
