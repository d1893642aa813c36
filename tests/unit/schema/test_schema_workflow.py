"""WorkflowSpec helpers: tasks by name, default backend and operator, visible variables."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec

Load = Callable[..., WorkflowSpec]

TEXT = """
version: "0.1"
variables:
  A: {value: top, domain: [top, other]}
  B: top
backends:
  cluster: {type: slurm}
  box: {type: local, nodes: 2}
workflow:
  name: wf
  variables:
    B: wf
  tasks:
    - name: one
      script: [x]
      variables:
        B: task
    - name: two
      script: [x]
      backend: box
    - name: three
      script: [x]
      backend: local
"""


def test_task_by_name(load: Load) -> None:
    spec = load(TEXT.replace("type: slurm}", "type: slurm, default: true}"))
    assert spec.task_by_name("two").backend == "box"
    with pytest.raises(KeyError):
        spec.task_by_name("nope")


def test_a_single_backend_is_the_default_and_local_always_exists(load: Load) -> None:
    spec = load(TEXT.replace("  box: {type: local, nodes: 2}\n", "").replace("      backend: box\n", ""))
    assert spec.default_backend_name() == "cluster"
    assert spec.backend_for("one") == "cluster" and spec.backend_type("cluster") == "slurm"
    assert spec.operator_for("one").type == "srun"
    assert spec.backend_for("three") == "local" and spec.backend_type("local") == "local"
    assert spec.operator_for("three").type == "bash"


def test_several_backends_need_a_default(load: Load) -> None:
    with pytest.raises(SpecError, match="none has 'default: true'"):
        load(TEXT)
    spec = load(TEXT.replace("type: slurm}", "type: slurm, default: true}"))
    assert spec.default_backend_name() == "cluster"
    assert spec.backend_for("two") == "box" and spec.backend_config("box").nodes == 2  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        spec.backend_config("nope")


def test_variables_visible_to_a_task(load: Load) -> None:
    spec = load(TEXT.replace("type: slurm}", "type: slurm, default: true}"))
    assert spec.find_variable("B", "one").value == "task"
    assert spec.find_variable("B", "two").value == "wf"
    assert spec.find_variable("B").value == "wf"
    assert spec.find_variable("A", "one").domain == ["top", "other"]
    with pytest.raises(KeyError):
        spec.find_variable("C", "one")
    assert {k: v.value for k, v in spec.variables_for("one").items()} == {"A": "top", "B": "task"}


def test_declared_operator_named_like_a_builtin_replaces_it(load: Load) -> None:
    spec = load(
        TEXT.replace("type: slurm}", "type: slurm, default: true}")
        + "operators:\n  srun: {type: srun, mpi: pmix}\n"
    )
    assert spec.operator_for("one").mpi == "pmix"  # type: ignore[attr-defined]


def test_required_by_is_a_reverse_dependency_and_an_absent_target_is_skipped(load):
    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: benchmark
              depends_on: [setup]
              script: [bench]
            - name: setup
              script: [prepare]
            - name: server
              required_by: [benchmark, decode_server]
              script: [serve]
        """
    )
    assert spec.task_by_name("benchmark").depends_on == ["setup", "server"]
    assert spec.task_by_name("server").depends_on == []


def test_a_tasks_operator_extra_args_are_added_to_the_operators(load):
    spec = load(
        """
        version: "0.1"
        operators:
          - {name: w, type: srun, extra_args: ["--container-image=x:1"]}
        workflow:
          name: wf
          tasks:
            - name: t
              operator: {name: w, extra_args: [--container-remap-root]}
              script: [run]
        """
    )
    assert spec.operator_for("t").extra_args == ["--container-image=x:1", "--container-remap-root"]
