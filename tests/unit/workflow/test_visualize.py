"""The task graph as text: every task is its own node, whatever characters its name uses."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from sflow.schema import load_workflow
from sflow.workflow.plan import expand
from sflow.workflow.visualize import render_graph


def _graph(tmp_path: Path, names: list[str], fmt: str = "mermaid") -> str:
    tasks = "".join(f"    - name: {n}\n      script: [echo]\n" for n in names)
    tasks += f"    - name: last\n      depends_on: [{', '.join(names)}]\n      script: [echo]\n"
    text = f'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n{tasks}'
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return render_graph(expand(load_workflow([path])).instances, fmt, title="wf")


def test_mermaid_ids_differ_for_names_that_differ_only_in_punctuation(tmp_path: Path) -> None:
    names = ["x-y", "x_y", "x.y", "x__2d_y", "x_2d_y"]
    text = _graph(tmp_path, names)
    nodes = dict(re.findall(r'^    (\S+)\["([^"]+)"\]$', text, re.MULTILINE))
    assert sorted(nodes.values()) == sorted([*names, "last"])
    assert len(nodes) == len(names) + 1  # one id per task
    for node_id in nodes:
        assert re.fullmatch(r"[A-Za-z0-9_]+", node_id), node_id
    edges = re.findall(r"^    (\S+) --> (\S+)$", text, re.MULTILINE)
    assert sorted(nodes[a] for a, _ in edges) == sorted(names)
    assert {nodes[b] for _, b in edges} == {"last"}


def test_mermaid_ids_are_stable_when_tasks_are_added(tmp_path: Path) -> None:
    def ids(names: list[str]) -> dict[str, str]:
        text = _graph(tmp_path, names)
        return {label: i for i, label in re.findall(r'^    (\S+)\["([^"]+)"\]$', text, re.MULTILINE)}

    few = ids(["x-y", "a"])
    more = ids(["x_y", "x-y", "b.c", "a"])
    assert few["x-y"] == more["x-y"] and few["a"] == more["a"]
    assert few["a"] == "t_a"  # a name that is already an id keeps it
