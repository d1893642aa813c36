"""Accepted shapes and shorthands, type coercion, defaults, and where every model came from."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from sflow.schema import WorkflowSpec
from sflow.schema.models import (
    DockerRunOperator,
    LocalBackend,
    OperatorRef,
    PythonOperator,
    SlurmBackend,
    SrunOperator,
    SshOperator,
)

Load = Callable[..., WorkflowSpec]
TASKS = "workflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n"


def test_named_sections_as_list_or_mapping_are_the_same(load: Load) -> None:
    as_list = load(
        textwrap.dedent("""
        version: "0.1"
        variables:
          - name: N
            value: 2
        artifacts:
          - name: cfg
            uri: file://cfg.json
            content: "{}"
        backends:
          - name: c
            type: local
        operators:
          - name: op
            type: python
        """)
        + TASKS
    )
    as_dict = load(
        textwrap.dedent("""
        version: "0.1"
        variables:
          N: {value: 2}
        artifacts:
          cfg: {uri: "file://cfg.json", content: "{}"}
        backends:
          c: {type: local}
        operators:
          op: {type: python}
        """)
        + TASKS
    )
    for spec in (as_list, as_dict):
        assert spec.variables["N"].name == "N" and spec.variables["N"].value == 2
        assert spec.artifacts["cfg"].name == "cfg" and spec.artifacts["cfg"].content == "{}"
        assert isinstance(spec.backends["c"], LocalBackend) and spec.backends["c"].name == "c"
        assert (
            isinstance(spec.operators["op"], PythonOperator) and spec.operators["op"].python_exec == "python3"
        )
    assert as_list == as_dict


def test_plain_variable_values_and_task_shorthands(load: Load) -> None:
    spec = load(
        """
        version: 0.1
        variables:
          MODEL: llama
          N: 4
        workflow:
          name: wf
          variables:
            STEPS: 10
          tasks:
            - name: a
              script: echo one line
            - name: b
              script: [echo b]
              depends_on: a
              operator: srun
              retries: 3
              variables:
                LR: 0.1
              probes:
                readiness:
                  log_watch:
                    regex_pattern: ready
        """
    )
    assert spec.version == "0.1"
    assert spec.variables["MODEL"].value == "llama" and spec.variables["N"].value == 4
    assert spec.workflow.variables["STEPS"].value == 10
    a, b = spec.workflow.tasks
    assert a.script == ["echo one line"] and a.depends_on == [] and a.operator is None
    assert b.depends_on == ["a"]
    assert b.operator == OperatorRef(name="srun")
    assert b.retries is not None and (b.retries.count, b.retries.interval, b.retries.backoff) == (3, 0.0, 1.0)
    assert b.variables["LR"].value == 0.1
    assert b.probes is not None and len(b.probes.readiness) == 1
    assert b.probes.readiness[0].kind == "log_watch"
    assert b.probes.readiness[0].log_watch is not None and b.probes.readiness[0].log_watch.pattern == "ready"


def test_tasks_as_a_mapping(load: Load) -> None:
    spec = load(
        'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n    a:\n      script: [x]\n    b:\n      script: [y]\n      depends_on: [a]\n'
    )
    assert [t.name for t in spec.workflow.tasks] == ["a", "b"]
    assert spec.workflow.tasks[1].loc("depends_on").endswith(":9")


@pytest.mark.parametrize(
    ("type_name", "raw", "expected"),
    [
        ("integer", "8", 8),
        ("int", 8.0, 8),
        ("float", "0.5", 0.5),
        ("float", 2, 2.0),
        ("boolean", "yes", True),
        ("boolean", "off", False),
        ("string", 7, "7"),
        ("string", True, "true"),
        ("list", "[a, 1]", ["a", 1]),
        ("dict", {"a": 1}, {"a": 1}),
        ("integer", "${{ variables.N * 2 }}", "${{ variables.N * 2 }}"),
    ],
)
def test_variable_types_coerce_values(type_name: str, raw: object, expected: object) -> None:
    from sflow.schema.models import Variable

    var = Variable(name="X", value=raw, type=type_name)
    assert var.value == expected and type(var.value) is type(expected)


def test_domain_is_coerced_and_checked() -> None:
    from sflow.schema.models import Variable

    var = Variable(name="X", value="2", type="integer", domain=["1", 2, 4])
    assert (var.value, var.domain) == (2, [1, 2, 4])


def test_backend_defaults(load: Load) -> None:
    spec = load(
        'version: "0.1"\nbackends:\n  l: {type: local, default: true}\n  s:\n    type: slurm\n    time: 1:30:00\n'
        + TASKS
    )
    local, slurm = spec.backends["l"], spec.backends["s"]
    assert isinstance(local, LocalBackend) and (local.nodes, local.gpus_per_node) == (1, 0)
    assert isinstance(slurm, SlurmBackend)
    assert (
        slurm.time == "1:30:00"
        and slurm.nodes == 1
        and slurm.gpus_per_node is None
        and slurm.extra_args == []
    )
    assert slurm.default_operator == "srun" and local.default_operator == "bash"


def test_expressions_are_allowed_for_counts_ports_and_indices(load: Load) -> None:
    spec = load(
        """
        version: "0.1"
        variables:
          N: 2
        backends:
          c:
            type: slurm
            nodes: ${{ variables.N }}
            partition: ${{ variables.P }}
        workflow:
          name: wf
          tasks:
            - name: t
              script: [x]
              backend: c
              resources:
                nodes: {count: "${{ variables.N }}", indices: [0, -1]}
                gpus: {count: 4, indices: "${{ [variables.N - 1] }}"}
              replicas: {count: "${{ variables.N }}", policy: sequential}
              probes:
                readiness:
                  - tcp_port:
                      port: ${{ 8000 + 1 }}
                    timeout: 5m
        """
    )
    c = spec.backends["c"]
    assert isinstance(c, SlurmBackend) and c.nodes == "${{ variables.N }}"
    task = spec.workflow.tasks[0]
    assert task.resources is not None and task.resources.nodes is not None and task.resources.gpus is not None
    # plan-shaping fields are rendered once loaded; backend fields when the run starts
    assert task.resources.nodes.count == 2 and task.resources.nodes.indices == [0, -1]
    assert task.resources.gpus.indices == [1]
    assert task.replicas is not None and task.replicas.count == 2
    assert task.replicas is not None and task.replicas.policy == "sequential"
    assert task.probes is not None and task.probes.readiness[0].timeout == 300.0


def test_operator_types_and_overrides(load: Load) -> None:
    spec = load(
        """
        version: "0.1"
        operators:
          mpi_run: {type: srun, mpi: pmix, ntasks_per_node: 8, container_mounts: ["/a:/a"]}
          remote: {type: ssh, host: login1, port: 2222}
          box: {type: docker_run, image: "ubuntu:24.04"}
        workflow:
          name: wf
          tasks:
            - name: a
              script: [x]
              operator: {name: mpi_run, ntasks_per_node: 4, exclusive: true}
            - name: b
              script: [x]
            - name: c
              script: [x]
              operator: box
        """
    )
    a = spec.operator_for("a")
    assert isinstance(a, SrunOperator)
    assert (a.mpi, a.ntasks_per_node, a.exclusive, a.container_mounts) == ("pmix", 4, True, ["/a:/a"])
    assert a.loc().endswith(":11") and a.path() == "workflow.tasks[0].operator"
    assert spec.operators["mpi_run"].ntasks_per_node == 8  # type: ignore[union-attr]
    assert isinstance(spec.operators["remote"], SshOperator)  # read; a task that uses it is refused
    assert isinstance(spec.operator_for("c"), DockerRunOperator)


def test_every_model_knows_its_file_line_and_path(load: Load) -> None:
    spec = load(
        """
        version: "0.1"
        workflow:
          name: wf
          tasks:
            - name: a
              script:
                - echo a
              resources:
                gpus:
                  count: 2
              probes:
                failure:
                  log_watch:
                    match_pattern: "CUDA error"
        """
    )
    task = spec.workflow.tasks[0]
    file = spec.sources[0]
    assert spec.loc("workflow") == f"{file}:2"
    assert task.loc() == f"{file}:5" and task.path() == "workflow.tasks[0]"
    assert task.loc("script") == f"{file}:6" and task.path("script") == "workflow.tasks[0].script"
    assert task.resources is not None and task.resources.gpus is not None
    assert task.resources.gpus.loc("count") == f"{file}:10"
    assert task.resources.gpus.path("count") == "workflow.tasks[0].resources.gpus.count"
    assert task.probes is not None
    probe = task.probes.failure[0]
    assert probe.loc() == f"{file}:12" and probe.path() == "workflow.tasks[0].probes.failure[0]"
    assert probe.log_watch is not None and probe.log_watch.loc("match_pattern") == f"{file}:14"


TWO_TASKS = """
    version: "0.1"
    workflow:
      name: wf
      tasks:
        - name: a
          script: [echo a]
        - name: b
          script: [echo b]
          probes:
            readiness:
              log_watch:
                match_pattern: ready
    """


def test_origins_are_found_when_first_asked_not_while_loading(load: Load) -> None:
    spec = load(TWO_TASKS)
    probe = spec.workflow.tasks[1].probes.readiness[0]  # type: ignore[union-attr]
    assert "_locs" not in probe.__dict__  # a workflow without mistakes is not walked for them
    assert probe.path("log_watch") == "workflow.tasks[1].probes.readiness[0].log_watch"
    assert probe.loc("log_watch") == f"{spec.sources[0]}:11"
    assert spec.workflow.tasks[0].loc("script") == f"{spec.sources[0]}:6"


def test_models_keep_their_origins_after_the_spec_is_gone_or_another_is_loaded(load: Load) -> None:
    first = load(TWO_TASKS).workflow.tasks[1]  # the spec itself is dropped at once
    second = load(TWO_TASKS.replace("name: b", "name: c")).workflow.tasks[1]
    assert (first.loc("name"), first.path("name")) == (second.loc("name"), "workflow.tasks[1].name")
    assert first.loc("name").endswith("wf.yaml:7") and (first.name, second.name) == ("b", "c")


def test_monitors_turned_on_in_code_have_no_location(load: Load) -> None:
    spec = load(TWO_TASKS)
    spec.enable_monitors(True, ["a"])
    monitor = spec.workflow.tasks[0].monitor
    assert monitor is not None and monitor.loc("interval") == "" and monitor.path() == ""
    assert spec.workflow.tasks[0].loc() == f"{spec.sources[0]}:5"


def test_models_built_in_code_have_no_location() -> None:
    assert SlurmBackend(name="x").loc() == "" and SlurmBackend(name="x").path("time") == "time"


def test_script_text_joins_lines(load: Load) -> None:
    spec = load(
        'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n    - name: t\n      script:\n        - echo a\n        - echo b\n'
    )
    assert spec.workflow.tasks[0].script_text == "echo a\necho b"


def test_docker_backend_runs_docker_run_by_default(load: Load) -> None:
    spec = load(
        """
        version: "0.1"
        backends:
          - {name: box, type: docker, image: "img:1", hosts: [{name: a, context: ctx-a}]}
        workflow:
          name: wf
          tasks:
            - {name: a, script: [x]}
        """
    )
    assert spec.operator_name_for("a") == "docker_run"
    assert isinstance(spec.operator_for("a"), DockerRunOperator)


def test_a_docker_operator_is_docker_run(load: Load) -> None:
    from sflow.errors import SpecError

    with pytest.raises(SpecError, match=r"unknown type 'docker'.*did you mean 'docker_run'"):
        load(
            """
            version: "0.1"
            operators:
              box: {type: docker, image: "img:1"}
            workflow:
              name: wf
              tasks:
                - {name: a, script: [x]}
            """
        )
