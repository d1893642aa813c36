"""Variables that read variables declared after them: resolved in dependency order; a cycle is an
input error naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow
from sflow.schema.variable_order import VariableCycle, resolution_order


def values(**named: object) -> dict[str, SimpleNamespace]:
    return {name: SimpleNamespace(value=value) for name, value in named.items()}


def test_declaration_order_is_kept_when_nothing_reads_ahead() -> None:
    assert resolution_order(values(A=1, B="${{ variables.A }}", C="x")) == ["A", "B", "C"]


def test_a_variable_comes_after_those_it_reads() -> None:
    order = resolution_order(
        values(A="${{ variables.B }}-x", B="${{ [variables.C, variables.D] | max }}", C=1, D=2, E=3)
    )
    assert order == ["C", "D", "B", "A", "E"]


def test_reading_its_own_name_is_no_dependency() -> None:
    assert resolution_order(values(N="${{ variables.N + 1 }}", M="${{ variables.N }}")) == ["N", "M"]


def test_a_whole_template_may_read_anything_declared_before_it() -> None:
    order = resolution_order(values(A="{% if variables.B %}y{% endif %}", B=1, C="${{ variables.A }}"))
    assert order == ["A", "B", "C"]


def test_a_cycle_names_its_variables_in_order() -> None:
    with pytest.raises(VariableCycle) as err:
        resolution_order(values(A="${{ variables.B }}", B="${{ variables.C }}", C="${{ variables.A }}", D=1))
    assert err.value.cycle == ["A", "B", "C", "A"]
    assert "A -> B -> C -> A" in str(err.value)


FORWARD = """
    version: "0.1"
    variables:
      WORKERS: {value: "${{ variables.TP * variables.DP }}", type: integer}
      TP: {value: 2}
      DP: {value: "${{ variables.BASE }}"}
    workflow:
      name: wf
      variables:
        LABEL: "w${{ variables.SIZE }}"
        SIZE: "${{ variables.WORKERS }}"
      tasks:
        - name: t
          replicas: {count: "${{ variables.WORKERS }}"}
          script: ["echo ${{ variables.LABEL }}"]
    """
LATER = """
    version: "0.1"
    variables:
      BASE: {value: 3}
    """


def test_variables_may_read_ones_a_later_file_declares(write: Callable[..., Path], tmp_path: Path) -> None:
    from sflow.workflow.dry_run import plan_data

    spec: WorkflowSpec = load_workflow([write(FORWARD, "a.yaml"), write(LATER, "b.yaml")])
    assert spec.workflow.tasks[0].replicas is not None and spec.workflow.tasks[0].replicas.count == 6
    tasks = plan_data(spec, tmp_path, tmp_path / "out")["tasks"]
    assert len(tasks) == 6
    assert tasks[0]["env"]["WORKERS"] == "6" and tasks[0]["env"]["LABEL"] == "w6"
    assert "echo w6" in tasks[0]["script"]


def test_a_cycle_is_an_input_error_at_the_first_variable(write: Callable[..., Path]) -> None:
    cyclic = FORWARD.replace('BASE }}"}', 'WORKERS }}"}')
    with pytest.raises(SpecError) as err:
        load_workflow([write(cyclic)])
    first = err.value.errors[0] if hasattr(err.value, "errors") else err.value
    assert first.message == "variables read each other in a cycle: WORKERS -> DP -> WORKERS"
    assert first.where and first.where.endswith("wf.yaml:3")
    assert first.field == "variables.WORKERS.value"
