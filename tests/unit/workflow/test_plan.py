"""Expanding a workflow into task instances: replicas, sweeps, dependencies, order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sflow.errors import PlanError, SpecError
from sflow.schema import WorkflowSpec, load_workflow
from sflow.workflow.plan import expand


def _load(tmp_path: Path, text: str) -> WorkflowSpec:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_workflow([path])


def test_instances_dependencies_and_order(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        version: "0.1"
        variables:
          LR: {value: 1, domain: [1, 2]}
        workflow:
          name: wf
          tasks:
            - name: report
              depends_on: [train, seq, prep]
              script: [echo]
            - name: prep
              script: [echo]
            - name: train
              depends_on: [prep, prep]
              replicas: {variables: [LR]}
              script: [echo]
            - name: seq
              depends_on: [prep]
              replicas: {count: 3, policy: sequential}
              script: [echo]
        """,
    )
    plan = expand(spec)
    by_name = plan.by_name()
    assert [i.name for i in plan.instances] == [
        "report",
        "prep",
        "train_1",  # a sweep's replicas are named by their values (LR: 1, 2)
        "train_2",
        "seq_0",
        "seq_1",
        "seq_2",
    ]
    assert by_name["report"].deps == ("train_1", "train_2", "seq_0", "seq_1", "seq_2", "prep")
    assert by_name["prep"].deps == ()
    assert by_name["train_2"].deps == ("prep", "prep") and by_name["train_2"].sweep == {"LR": 2}
    assert by_name["seq_0"].deps == ("prep",) and by_name["seq_2"].deps == (
        "seq_1",
    )  # after prep through seq_0
    assert by_name["seq_1"].replica_index == 1 and by_name["seq_1"].sweep == {}
    assert by_name["prep"].replica_index is None and by_name["prep"].sweep == {}
    assert plan.order == ["prep", "train_1", "train_2", "seq_0", "seq_1", "seq_2", "report"]
    assert all(i.backend == "local" and i.operator.name == "bash" for i in plan.instances)


def test_in_order_lists_the_instances_in_start_order(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script: [echo]
            - name: b
              depends_on: [a]
              script: [echo]
        """,
    )
    plan = expand(spec)
    ordered = plan.in_order()
    assert [i.name for i in ordered] == ["a", "b"] and ordered is not plan.instances
    plan.instances.reverse()  # YAML order no longer the start order
    assert [i.name for i in plan.in_order()] == ["a", "b"]


def test_one_dependency_on_a_task_with_replicas_is_every_replica(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - {name: gather, depends_on: [work], script: [echo]}
            - {name: work, replicas: {count: 2}, depends_on: [prep], script: [echo]}
            - {name: prep, script: [echo]}
            - {name: last, depends_on: [gather], script: [echo]}
        """,
    )
    by_name = expand(spec).by_name()
    assert by_name["gather"].deps == ("work_0", "work_1")
    assert by_name["work_0"].deps == by_name["work_1"].deps == ("prep",)
    assert by_name["last"].deps == ("gather",)


def test_a_cycle_is_reported_at_depends_on(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              depends_on: [b]
              script: [echo]
            - name: b
              depends_on: [a]
              script: [echo]
        """,
    )
    with pytest.raises(SpecError, match="dependency cycle: b -> a -> b") as err:
        expand(spec)
    assert err.value.where.endswith("wf.yaml:9")


def test_a_long_cycle_is_one_short_line(tmp_path: Path) -> None:
    n = 5000
    tasks = "".join(f"    - {{name: t{i}, depends_on: [t{(i - 1) % n}], script: [echo]}}\n" for i in range(n))
    path = tmp_path / "wf.yaml"
    path.write_text('version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n' + tasks, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        expand(load_workflow([path]))
    assert err.value.message == (
        "dependency cycle through 5000 tasks: "
        "t1 -> t2 -> t3 -> t4 -> t5 -> ... (4991 more) ... -> t4997 -> t4998 -> t4999 -> t0 -> t1"
    )
    assert err.value.where == f"{path}:6"


def test_a_sweeps_replicas_are_named_by_their_values() -> None:
    from sflow.schema.task import sweep_names

    points = [{"C": 16, "P": "fp8"}, {"C": 0.5, "P": "bf-16"}, {"C": 64, "P": "a b"}]
    assert sweep_names("bench", points) == ["bench_16_fp8", "bench_0_5_bf_16", "bench_64_a_b"]
    # by index when a value makes no plain name, or two points the same name
    assert sweep_names("bench", [{"M": "a/b"}, {"M": "c"}]) == ["bench_0", "bench_1"]
    assert sweep_names("bench", [{"V": "1.5"}, {"V": "1-5"}]) == ["bench_0", "bench_1"]


@pytest.mark.parametrize(
    ("resources", "count", "per_node", "gpu_indices", "total"),
    [
        ("{nodes: {count: 2}, gpus: {count: 4}}", 2, 2, (), 0),  # the total across the nodes
        ("{nodes: {indices: [0, 1]}, gpus: {count: 4}}", None, 2, (), 0),
        ("{gpus: {count: 4, indices: [1, 2]}}", 2, 0, (1, 2), 0),  # indices are each node's slice
        ("{gpus: {count: 8}}", None, 0, (), 8),  # the placer decides how many nodes
    ],
)
def test_gpu_count_is_the_total_across_the_tasks_nodes(
    tmp_path: Path, resources: str, count: int | None, per_node: int, gpu_indices: tuple, total: int
) -> None:
    spec = _load(
        tmp_path,
        f"""
        version: "0.1"
        backends: [{{name: l, type: local, nodes: 2, gpus_per_node: 4}}]
        workflow:
          name: wf
          tasks:
            - name: t
              resources: {resources}
              script: [echo]
        """,
    )
    request = expand(spec).instances[0].request
    assert (request.count, request.gpus, request.gpu_indices, request.total_gpus) == (
        count,
        per_node,
        gpu_indices,
        total,
    )


def test_a_gpu_count_that_does_not_split_over_the_nodes_is_refused(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
        version: "0.1"
        backends: [{name: l, type: local, nodes: 2, gpus_per_node: 4}]
        workflow:
          name: wf
          tasks:
            - name: t
              resources: {nodes: {count: 2}, gpus: {count: 3}}
              script: [echo]
        """,
    )
    with pytest.raises(PlanError, match="multiple of the node count"):
        expand(spec)


NODES_WORKFLOW = """
version: "0.1"
backends:
  - {name: cl, type: BACKEND, nodes: 3, gpus_per_node: 2}
workflow:
  name: wf
  tasks:
    - name: plain
      script: [echo]
    - name: empty
      resources: {}
      script: [echo]
    - name: most
      resources: {nodes: {exclude: [0]}}
      script: [echo]
    - name: gpu
      resources: {gpus: {count: 1}}
      script: [echo]
    - name: front
      replicas: {count: 4}
      resources: {nodes: {count: 1}}
      script: [echo]
    - name: pair
      replicas: {count: 2}
      resources: {nodes: {count: 2}}
      script: [echo]
    - name: serial
      replicas: {count: 2, policy: sequential}
      resources: {nodes: {count: 1}}
      script: [echo]
"""


@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_a_task_without_nodes_or_gpus_runs_on_every_node_and_replicas_spread(
    tmp_path: Path, backend: str
) -> None:
    from sflow.workflow.dry_run import describe_plan, plan_data

    text = NODES_WORKFLOW.replace("BACKEND", backend)
    if backend == "slurm":
        text = text.replace("gpus_per_node: 2}", "gpus_per_node: 2, partition: p, time: 10}")
    spec = _load(tmp_path, text)
    describe_plan(spec, tmp_path, tmp_path / "out")
    tasks = plan_data(spec, tmp_path, tmp_path)["tasks"]
    index = {name: i for i, name in enumerate(tasks[0]["nodes"])}
    assert len(index) == 3
    assert {t["name"]: [index[n] for n in t["nodes"]] for t in tasks} == {
        "plain": [0, 1, 2],
        "empty": [0, 1, 2],
        "most": [1, 2],
        "gpu": [0],
        "front_0": [0],
        "front_1": [1],
        "front_2": [2],
        "front_3": [0],  # more replicas than nodes: round again
        "pair_0": [0, 1],
        "pair_1": [2, 0],
        "serial_0": [0],
        "serial_1": [0],
    }
