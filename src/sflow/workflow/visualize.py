"""The task graph as text (Mermaid for Markdown, Graphviz dot) or as an image drawn by Graphviz."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from sflow.errors import SflowError, UserError
from sflow.workflow.plan import TaskInstance

IMAGE_FORMATS = ("png", "svg", "pdf")

_PLAIN = re.compile(r"[A-Za-z0-9_]+")


def _node_id(name: str) -> str:
    """A Mermaid node id that depends on `name` alone and differs for different names.

    A name that is already a valid id keeps it (`t_train_0`); any other is spelled out
    (`x-y` -> `e_x_2d_y`: `_` doubled, other characters as `_<hex>_`), so `x-y`, `x.y` and
    `x_y` never share a node, and adding a task never renames another.
    """
    if _PLAIN.fullmatch(name):
        return "t_" + name
    return "e_" + "".join(_id_char(c) for c in name)


def _id_char(c: str) -> str:
    if c.isascii() and c.isalnum():
        return c
    return "__" if c == "_" else f"_{ord(c):x}_"


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


def draw(dot_text: str, fmt: str, path: Path) -> None:
    """Draw the dot graph into an image file with Graphviz's `dot` (which sflow does not bundle)."""
    dot = shutil.which("dot")
    if dot is None:
        raise UserError(
            f"--format {fmt} draws the graph with Graphviz's `dot`, which is not installed "
            "(Debian/Ubuntu: apt-get install graphviz); --format dot or mermaid print it as text"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(path)], input=dot_text, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise SflowError(f"dot could not draw {path}: {why}")
