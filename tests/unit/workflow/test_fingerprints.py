"""What changes a YAML task's fingerprint (and so makes a resumed run run it again), and what does not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sflow.errors import PlanError
from sflow.schema import load_workflow
from sflow.workflow.fingerprints import task_fingerprints
from sflow.workflow.plan import expand, select

BASE = """
version: "0.1"
variables:
  N: {value: 1, description: how many}
  LR: {value: 1, domain: [1, 2]}
backends:
  - {name: local, type: local, nodes: 2, gpus_per_node: 2}
workflow:
  name: wf
  tasks:
    - name: prep
      script: ["echo ${{ variables.N }}"]
    - name: train
      depends_on: [prep]
      replicas: {variables: [LR]}
      resources: {gpus: {count: 1}}
      retries: {count: 1}
      script: ["echo train $LR"]
    - name: other
      script: ["echo other"]
    - name: report
      depends_on: [train]
      script: ["echo report"]
"""


def prints(tmp_path: Path, text: str = BASE, sets: tuple[str, ...] = ()) -> dict[str, str]:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    spec = load_workflow([path], sets=sets)
    return task_fingerprints(spec, expand(spec))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after.get(name)}


def trainers(prints: dict[str, str]) -> set[str]:
    """The replicas of `train`, whatever their numbering."""
    found = {name for name in prints if name.startswith("train_")}
    assert len(found) == 2
    return found


def test_fingerprints_are_stable_and_differ_between_instances(tmp_path):
    first = prints(tmp_path)
    assert first == prints(tmp_path)
    assert len(set(first.values())) == len(first)  # replicas differ by their sweep value


def test_an_edited_script_changes_the_task_and_everything_downstream(tmp_path):
    before = prints(tmp_path)
    after = prints(tmp_path, BASE.replace("echo train $LR", "echo train --lr $LR"))
    assert changed(before, after) == {*trainers(before), "report"}


def test_a_variable_changes_every_task_it_reaches(tmp_path):
    # variables are in every task's environment, so any task may read them
    before = prints(tmp_path)
    assert changed(before, prints(tmp_path, sets=("N=2",))) == set(before)


def test_resources_change_the_task(tmp_path):
    before = prints(tmp_path)
    after = prints(tmp_path, BASE.replace("gpus: {count: 1}", "gpus: {count: 2}"))
    assert changed(before, after) == {*trainers(before), "report"}


def test_what_does_not_decide_the_result_leaves_fingerprints_alone(tmp_path):
    before = prints(tmp_path)
    assert prints(tmp_path, BASE.replace("retries: {count: 1}", "retries: {count: 3}")) == before
    assert prints(tmp_path, BASE.replace("description: how many", "description: count")) == before
    assert (
        prints(tmp_path, BASE.replace("gpus_per_node: 2}", "gpus_per_node: 2, max_concurrent: 3}")) == before
    )


def test_select_keeps_a_task_with_what_it_needs(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(BASE).lstrip("\n"), encoding="utf-8")
    plan = expand(load_workflow([path]))
    first, second = sorted(i.name for i in plan.instances if i.task.name == "train")
    chosen = select(plan, ["report"])
    assert chosen.order == ["prep", first, second, "report"]
    alone = select(plan, ["train"], with_deps=False)
    assert alone.order == [first, second]
    assert all(i.deps == () for i in alone.instances)
    assert select(plan, [second]).order == ["prep", second]
    with pytest.raises(PlanError, match="--task trian: no such task; did you mean 'train'"):
        select(plan, ["trian"])
