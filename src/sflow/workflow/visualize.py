"""The task graph as text: Mermaid (for Markdown) or Graphviz dot."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sflow.workflow.plan import TaskInstance

_ID = re.compile(r"[^A-Za-z0-9_]")


def _node_id(name: str) -> str:
    return "t_" + _ID.sub("_", name)


def render_graph(instances: Sequence[TaskInstance], fmt: str, title: str = "") -> str:
    if fmt == "dot":
        return _dot(instances, title)
    return _mermaid(instances)


def _mermaid(instances: Sequence[TaskInstance]) -> str:
    lines = ["flowchart TD"]
    for inst in instances:
        label = inst.name.replace('"', "'")
        lines.append(f'    {_node_id(inst.name)}["{label}"]')
    for inst in instances:
        for dep in inst.deps:
            lines.append(f"    {_node_id(dep)} --> {_node_id(inst.name)}")
    return "\n".join(lines)


def _dot(instances: Sequence[TaskInstance], title: str) -> str:
    name = title.replace('"', "'") or "workflow"
    lines = [f'digraph "{name}" {{', "    rankdir=TB;"]
    for inst in instances:
        label = inst.name.replace('"', "'")
        lines.append(f'    "{label}";')
    for inst in instances:
        for dep in inst.deps:
            lines.append(f'    "{dep}" -> "{inst.name}";')
    lines.append("}")
    return "\n".join(lines)
