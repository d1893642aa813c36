"""Plan-shaping fields (replicas, retries, resources, timeouts) may use variables through ${{ }}."""

from __future__ import annotations

import pytest

from sflow.errors import SpecError

WF = """
version: "0.1"
variables:
  N: {value: 3, type: integer}
  LIMIT: {value: "2m"}
workflow:
  name: wf
  timeout: "${{ variables.LIMIT }}"
  variables:
    TRIES: {value: "${{ variables.N - 1 }}"}
  tasks:
    - name: t
      variables:
        MODE: {value: sequential}
      replicas: {count: "${{ variables.N }}", policy: "${{ variables.MODE }}"}
      retries: {count: "${{ variables.TRIES }}", interval: "${{ variables.N }}s"}
      resources:
        nodes: {count: "${{ variables.N - 2 }}", exclude: ["${{ -1 }}"]}
        gpus: {count: "${{ variables.N - 3 }}"}
      timeout: "${{ variables.N * 10 }}"
      script: ["true"]
"""


def test_expressions_in_plan_fields_become_plain_values(load):
    spec = load(WF)
    task = spec.workflow.tasks[0]
    assert spec.workflow.timeout == 120
    assert task.replicas.count == 3 and task.replicas.policy == "sequential"
    assert task.retries.count == 2 and task.retries.interval == 3
    assert task.resources.nodes.count == 1 and task.resources.nodes.exclude == [-1]
    assert task.resources.gpus.count == 0
    assert task.timeout == 30


def test_set_reaches_plan_fields(load):
    spec = load(WF, sets=["N=5"])
    assert spec.workflow.tasks[0].replicas.count == 5


def test_a_plan_field_cannot_use_nodes(load, write):
    text = WF.replace('"${{ variables.N * 10 }}"', '"${{ backends.x.nodes[0].num_gpus }}"')
    with pytest.raises(SpecError) as info:
        load(text)
    message = str(info.value)
    assert "wf.yaml:19: workflow.tasks[0].timeout" in message and "'backends' is undefined" in message
    assert "can use variables.* and workflow.name" in message


def test_a_rendered_value_is_checked_like_a_literal(load):
    with pytest.raises(SpecError, match=r"resources\.nodes\.count: must be >= 1, got -1"):
        load(WF, sets=["N=1"])


OPERATORS = """
version: "0.1"
variables:
  N: {value: 2}
  PY: {value: python3.11}
  IMAGE: {value: "img:1"}
backends:
  - {name: c, type: slurm, default: true, nodes: 2}
operators:
  - name: w
    type: srun
    ntasks_per_node: "${{ variables.N }}"
    container_image: ${{ variables.IMAGE }}
    extra_args: ["--container-env=MODE=${{ variables.N * 2 }}"]
  - name: py
    type: python
    python_exec: ${{ variables.PY }}
workflow:
  name: wf
  tasks:
    - name: a
      operator: w
      script: [hostname]
    - name: b
      variables:
        M: {value: 3}
      operator: {name: w, nodes: "${{ variables.M - 1 }}", ntasks: "${{ variables.N }}"}
      script: [hostname]
    - name: c
      operator: py
      script: ["print(1)"]
"""


def test_operator_fields_are_rendered_to_values_of_their_type(load):
    spec = load(OPERATORS, sets=["N=4"])
    w = spec.operators["w"]
    assert w.ntasks_per_node == 4 and w.container_image == "img:1"
    assert w.extra_args == ["--container-env=MODE=8"]
    assert spec.operators["py"].python_exec == "python3.11"
    b = spec.operator_for("b")
    assert (b.nodes, b.ntasks, b.ntasks_per_node) == (2, 4, 4)


def test_an_operator_field_that_cannot_be_known_before_nodes_is_an_error_at_its_line(load):
    text = OPERATORS.replace("${{ variables.IMAGE }}", "${{ backends.c.nodes[0].name }}")
    with pytest.raises(SpecError) as err:
        load(text)
    assert "wf.yaml:12: operators.w.container_image" in str(err.value)
    assert "variables.* and workflow.name" in str(err.value)


PORTS = """
version: "0.1"
variables:
  PORT: {value: 8123}
workflow:
  name: wf
  tasks:
    - name: server
      ports:
        - {port: "${{ variables.PORT }}", name: http}
        - {port: 9000}
      script: ["true"]
"""


def test_a_tasks_ports_are_rendered_from_variables(load):
    ports = load(PORTS).workflow.tasks[0].ports
    assert [(p.port, p.name) for p in ports] == [(8123, "http"), (9000, None)]


@pytest.mark.parametrize("value", ["99999", "0"])
def test_a_port_outside_1_to_65535_is_refused_at_its_line(load, value):
    with pytest.raises(
        SpecError, match=r"wf.yaml:9: workflow.tasks\[0\].ports\[0\].port: port must be between"
    ):
        load(PORTS, sets=[f"PORT={value}"])


def test_a_literal_port_is_checked_at_load(load):
    with pytest.raises(SpecError, match=r"ports\[1\]\.port: port must be between 1 and 65535, got 70000"):
        load(PORTS.replace("port: 9000", "port: 70000"))
