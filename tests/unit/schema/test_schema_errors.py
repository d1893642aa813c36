"""Each kind of user mistake is one SpecError line naming file:line and the dotted field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError, UserError
from sflow.schema import load_workflow

HEAD = 'version: "0.1"\n'


def error_of(write: Callable[..., Path], text: str, **kwargs: object) -> tuple[SpecError, str]:
    path = write(text)
    with pytest.raises(SpecError) as err:
        load_workflow([path], **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
    return err.value, str(path)


def test_unknown_task_field_suggests_the_right_one(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write,
        HEAD
        + """workflow:
  name: wf
  tasks:
    - name: a
      script: [echo a]
    - name: b
      script: [echo b]
      depend_on: [a]
""",
    )
    assert err.where == f"{path}:9"
    assert err.field == "workflow.tasks[1].depend_on"
    assert err.message == "unknown field 'depend_on'; did you mean 'depends_on'?"
    assert (
        str(err)
        == f"{path}:9: workflow.tasks[1].depend_on: unknown field 'depend_on'; did you mean 'depends_on'?"
    )


def test_unknown_top_level_field(write: Callable[..., Path]) -> None:
    err, path = error_of(write, HEAD + "workflows:\n  name: wf\n")
    assert (err.where, err.field) == (f"{path}:2", "workflows")
    assert "did you mean 'workflow'?" in err.message


def test_unknown_field_in_a_discriminated_backend(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "backends:\n  - name: c\n    type: slurm\n    partiton: gpu\nworkflow:\n  name: wf\n  tasks:\n    - {name: a, script: [x]}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:5", "backends.c.partiton")
    assert err.message == "unknown field 'partiton'; did you mean 'partition'?"


def test_nodes_must_be_an_integer_or_expression(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "backends:\n  c:\n    type: local\n    nodes: abc\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:5", "backends.c.nodes")
    assert "expected an integer or a ${{ }} expression, got the string 'abc'" in err.message


def test_wrong_type_names_what_was_found(write: Callable[..., Path]) -> None:
    text = (
        HEAD + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      depends_on: {a: 1}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:7", "workflow.tasks[0].depends_on")
    assert err.message == "expected a list, got a mapping"


def test_missing_required_field_points_at_its_object(write: Callable[..., Path]) -> None:
    text = HEAD + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n    - name: b\n"
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:7", "workflow.tasks[1].script")
    assert err.message == "missing required field 'script'"


def test_missing_workflow_and_version(write: Callable[..., Path]) -> None:
    err, path = error_of(write, HEAD + "variables: {}\n")
    assert err.message == "missing required field 'workflow'" and err.where == f"{path}:1"
    err, path = error_of(write, "workflow:\n  name: wf\n  tasks: [{name: a, script: [x]}]\n")
    assert err.message == "missing required field 'version'"


def test_unsupported_version(write: Callable[..., Path]) -> None:
    err, path = error_of(write, 'version: "2"\nworkflow: {name: wf, tasks: [{name: a, script: [x]}]}\n')
    assert (err.where, err.field) == (f"{path}:1", "version")
    assert "unsupported version" in err.message


def test_empty_tasks(write: Callable[..., Path]) -> None:
    err, path = error_of(write, HEAD + "workflow:\n  name: wf\n  tasks: []\n")
    assert (err.where, err.field, err.message) == (f"{path}:4", "workflow.tasks", "must not be empty")


def test_duplicate_task_names(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n    - name: a\n      script: [y]\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:7", "workflow.tasks[1].name")
    assert err.message == f"duplicate task name 'a' (first defined at {path}:5)"


def test_depends_on_unknown_task_suggests(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n    - name: prepare\n      script: [x]\n    - name: b\n      script: [y]\n      depends_on:\n        - prepare\n        - prepar\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:11", "workflow.tasks[1].depends_on")
    assert err.message == "depends on unknown task 'prepar'; did you mean 'prepare'?"


def test_unknown_backend_and_operator(write: Callable[..., Path]) -> None:
    base = (
        HEAD
        + "backends:\n  cluster: {type: slurm}\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n"
    )
    err, path = error_of(write, base + "      backend: clustr\n")
    assert (err.where, err.field) == (f"{path}:9", "workflow.tasks[0].backend")
    assert err.message == "unknown backend 'clustr'; did you mean 'cluster'?"
    err, path = error_of(write, base + "      operator: srn\n")
    assert (err.where, err.field) == (f"{path}:9", "workflow.tasks[0].operator.name")
    assert err.message == "unknown operator 'srn'; did you mean 'srun'?"


def test_an_operator_type_that_is_read_but_not_run_is_named_where_a_task_uses_it(
    write: Callable[..., Path],
) -> None:
    text = (
        HEAD
        + "operators:\n  - {name: remote, type: ssh, host: h}\n"
        + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      operator: remote\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:9", "workflow.tasks[0].operator.name")
    assert err.message == (
        "operator 'remote' is of type 'ssh', which this version reads but cannot run; "
        "use one of: bash, srun, python, docker_run"
    )


def test_every_operator_type_the_schema_reads_is_run_or_refused_where_it_is_used() -> None:
    from sflow.launchers.base import get_launcher
    from sflow.schema.checks import NOT_RUN_OPERATOR_TYPES, RUN_OPERATOR_TYPES

    for type_name in RUN_OPERATOR_TYPES:
        assert get_launcher(type_name).type_name == type_name
    for type_name in NOT_RUN_OPERATOR_TYPES:
        with pytest.raises(UserError):
            get_launcher(type_name)


def test_unknown_backend_type_suggests(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write,
        HEAD + "backends:\n  c:\n    type: slrum\nworkflow: {name: wf, tasks: [{name: a, script: [x]}]}\n",
    )
    assert (err.where, err.field) == (f"{path}:3", "backends.c")
    assert (
        err.message == "unknown type 'slrum' (expected one of: local, slurm, docker); did you mean 'slurm'?"
    )


def test_backend_without_type(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write, HEAD + "backends:\n  c:\n    nodes: 2\nworkflow: {name: wf, tasks: [{name: a, script: [x]}]}\n"
    )
    assert (err.where, err.field, err.message) == (f"{path}:3", "backends.c", "missing 'type' field")


def test_more_than_one_default_backend(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "backends:\n  - name: a\n    type: local\n    default: true\n  - name: b\n    type: local\n    default: true\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:8", "backends.b.default")
    assert err.message == f"more than one default backend ('a' at {path}:5 and 'b')"


def test_several_backends_none_default_when_a_task_needs_one(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "backends:\n  a: {type: local}\n  b: {type: local}\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n"
    )
    err, path = error_of(write, text)
    assert err.where == f"{path}:2" and "none has 'default: true'" in err.message


def test_artifact_content_needs_file_uri(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "artifacts:\n  cfg:\n    uri: fs:///data/cfg\n    content: hello\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:3", "artifacts.cfg")
    assert err.message == "'content' is only allowed with a file:// uri"


def test_artifact_uri_scheme(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "artifacts:\n  cfg:\n    uri: s3://bucket/x\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:4", "artifacts.cfg.uri")
    assert "use fs://, file://, http:// or https://" in err.message


def test_replica_sweep_of_a_variable_without_domain(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "variables:\n  LR: {value: 0.1}\nworkflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n      replicas:\n        variables: [LR]\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:10", "workflow.tasks[0].replicas.variables")
    assert err.message == f"variable 'LR' has no domain to sweep (declared at {path}:3)"


def test_replica_sweep_of_an_unknown_variable(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "variables:\n  LR: {value: 0.1, domain: [0.1, 0.2]}\nworkflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n      replicas: {variables: [LRR]}\n"
    )
    err, _ = error_of(write, text)
    assert err.message == "unknown variable 'LRR'; did you mean 'LR'?"


def test_value_outside_its_domain(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write,
        HEAD
        + "variables:\n  N:\n    value: 3\n    domain: [1, 2]\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n",
    )
    assert (err.where, err.field) == (f"{path}:4", "variables.N.value")
    assert err.message == "value 3 is not in its domain [1, 2]"


def test_variable_value_of_the_wrong_type(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write,
        HEAD
        + "variables:\n  N:\n    value: many\n    type: integer\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n",
    )
    assert (err.where, err.field) == (f"{path}:4", "variables.N.value")
    assert "expected an integer" in err.message


def test_invalid_names(write: Callable[..., Path]) -> None:
    err, path = error_of(
        write, HEAD + "workflow:\n  name: wf\n  tasks:\n    - name: my task\n      script: [x]\n"
    )
    assert (err.where, err.field) == (f"{path}:5", "workflow.tasks[0].name")
    assert err.message.startswith("invalid name 'my task'")
    err, path = error_of(
        write, HEAD + "variables:\n  model-path: x\nworkflow: {name: wf, tasks: [{name: t, script: [x]}]}\n"
    )
    assert err.field == "variables.model-path.name" and "environment variable" in err.message


def test_operator_override_with_unknown_field(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n      operator:\n        name: srun\n        mpii: pmix\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:9", "workflow.tasks[0].operator.mpii")
    assert err.message == "unknown field 'mpii'; did you mean 'mpi'?"


def test_probe_needs_exactly_one_kind(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n      probes:\n        readiness:\n          delay: 5\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:8", "workflow.tasks[0].probes.readiness[0]")
    assert "exactly one of tcp_port, http_get, http_post, log_watch (found: none)" in err.message


def test_bad_duration(write: Callable[..., Path]) -> None:
    text = HEAD + "workflow:\n  name: wf\n  timeout: soon\n  tasks: [{name: t, script: [x]}]\n"
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:4", "workflow.timeout")
    assert "invalid duration 'soon'" in err.message


def test_output_pattern_needs_a_group(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n    - name: t\n      script: [x]\n      outputs:\n        - name: loss\n          pattern: 'loss=\\d+'\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field) == (f"{path}:9", "workflow.tasks[0].outputs[0].pattern")
    assert "exactly one group or a named group" in err.message


def test_error_in_a_second_file_names_that_file(write: Callable[..., Path]) -> None:
    first = write(HEAD + "workflow:\n  name: wf\n  tasks: [{name: a, script: [x]}]\n", "a.yaml")
    second = write(
        "workflow:\n  tasks:\n    - name: b\n      script: [y]\n      retries: {count: -1}\n", "b.yaml"
    )
    with pytest.raises(SpecError) as err:
        load_workflow([first, second])
    assert (err.value.where, err.value.field) == (f"{second}:5", "workflow.tasks[1].retries.count")
    assert err.value.message == "must be >= 0, got -1"


@pytest.mark.parametrize(
    "field, value, named, message",
    [
        (
            "result",
            "{ttft: '([0-9'}",
            "workflow.tasks[0].result",
            "invalid regular expression '([0-9': unterminated character set at position 1",
        ),
        (
            "monitor",
            "{window: {start: '', end: done}}",
            "workflow.tasks[0].monitor.window.start",
            "a window pattern must not be empty (it would match every line)",
        ),
    ],
)
def test_a_mistake_in_a_short_form_names_the_field_as_written(
    write: Callable[..., Path], field: str, value: str, named: str, message: str
) -> None:
    text = (
        HEAD + f"workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      {field}: {value}\n"
    )
    err, path = error_of(write, text)
    assert (err.where, err.field, err.message) == (f"{path}:7", named, message)


def test_mistakes_on_one_line_come_in_the_order_of_the_fields_then_unknown_keys(
    write: Callable[..., Path],
) -> None:
    from sflow.errors import SpecErrors

    path = write(
        HEAD
        + "backends:\n  c: {type: slurm, partiton: gpu, nodes: x}\n"
        + "workflow: {name: wf, tasks: [{name: a, script: [x]}]}\n"
    )
    with pytest.raises(SpecErrors) as err:
        load_workflow([path])
    assert [e.field for e in err.value.errors] == ["backends.c.nodes", "backends.c.partiton"]
