"""A file with several mistakes gets them all in one report (the first 20), each at its file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError, SpecErrors
from sflow.schema import load_workflow
from sflow.schema.problems import LIMIT

HEAD = 'version: "0.1"\n'


def errors_of(write: Callable[..., Path], text: str, **kwargs: object) -> tuple[SpecErrors, str]:
    path = write(text)
    with pytest.raises(SpecErrors) as err:
        load_workflow([path], **kwargs)  # type: ignore[arg-type]
    return err.value, str(path)


def lines(err: SpecErrors) -> list[str]:
    return [str(e) for e in err.errors]


def test_a_misspelled_required_key_is_named_with_its_fix(write: Callable[..., Path]) -> None:
    path = write(
        HEAD
        + "variables:\n  A: {valeu: 1}\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      scirpt: [x]\n"
    )
    with pytest.raises(SpecErrors) as err:
        load_workflow([path])
    assert lines(err.value) == [
        f"{path}:3: variables.A.valeu: unknown field 'valeu'; did you mean 'value'?",
        f"{path}:8: workflow.tasks[0].scirpt: unknown field 'scirpt'; did you mean 'script'?",
    ]


def test_a_single_misspelled_required_key_is_one_line(write: Callable[..., Path]) -> None:
    path = write(HEAD + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      scirpt: [x]\n")
    with pytest.raises(SpecError) as err:
        load_workflow([path])
    assert not isinstance(err.value, SpecErrors)
    assert (
        str(err.value)
        == f"{path}:6: workflow.tasks[0].scirpt: unknown field 'scirpt'; did you mean 'script'?"
    )


def test_a_missing_field_without_a_misspelling_is_still_reported(write: Callable[..., Path]) -> None:
    err, path = errors_of(
        write, HEAD + "workflow:\n  name: wf\n  tasks:\n    - name: a\n    - name: b\n      scirpt: [x]\n"
    )
    assert lines(err) == [
        f"{path}:5: workflow.tasks[0].script: missing required field 'script'",
        f"{path}:7: workflow.tasks[1].scirpt: unknown field 'scirpt'; did you mean 'script'?",
    ]


def test_every_field_mistake_is_reported_in_file_order(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "backends:\n  c: {type: slurm, partiton: gpu}\n"
        + "workflow:\n  name: wf\n  tasks:\n"
        + "    - name: a\n      script: [x]\n      depends_on: {a: 1}\n"
        + "    - name: b\n      script: [x]\n      retries: {count: -1}\n"
    )
    err, path = errors_of(write, text)
    assert err.total == 3
    assert [e.where for e in err.errors] == [f"{path}:3", f"{path}:9", f"{path}:12"]
    message = str(err)
    assert message.splitlines()[0] == "3 mistakes in the workflow files:"
    assert "backends.c.partiton: unknown field 'partiton'; did you mean 'partition'?" in message
    assert "workflow.tasks[0].depends_on: expected a list, got a mapping" in message
    assert "workflow.tasks[1].retries.count: must be >= 0, got -1" in message
    assert "Traceback" not in message


def test_every_broken_reference_is_reported(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n"
        + "    - name: a\n      script: [x]\n      depends_on: [b, zz]\n"
        + "    - name: b\n      script: [x]\n      backend: cluster\n      operator: sruun\n"
        + "    - name: b\n      script: [x]\n"
    )
    err, path = errors_of(write, text)
    assert lines(err) == [
        f"{path}:7: workflow.tasks[0].depends_on: depends on unknown task 'zz'",
        f"{path}:10: workflow.tasks[1].backend: unknown backend 'cluster'",
        f"{path}:11: workflow.tasks[1].operator.name: unknown operator 'sruun'; did you mean 'srun'?",
        f"{path}:12: workflow.tasks[2].name: duplicate task name 'b' (first defined at {path}:8)",
    ]


def test_mistakes_in_the_shape_of_sections_come_with_field_mistakes(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "variables:\n  - {value: 1}\n  - name: B\n    value: 2\n"
        + "artifacts: 3\n"
        + "workflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      timeout: soon\n"
    )
    err, path = errors_of(write, text)
    assert [(e.where, e.field) for e in err.errors] == [
        (f"{path}:3", "variables[0]"),
        (f"{path}:6", "artifacts"),
        (f"{path}:12", "workflow.tasks[0].timeout"),
    ]


def test_a_misspelled_top_level_key_is_one_mistake(write: Callable[..., Path]) -> None:
    path = write(HEAD + "workflows:\n  name: wf\n  tasks: [{name: a, script: [x]}]\n")
    with pytest.raises(SpecError) as err:
        load_workflow([path])
    assert (
        str(err.value)
        == f"{path}:2: workflows: unknown top-level field 'workflows'; did you mean 'workflow'?"
    )


def test_the_report_is_bounded(write: Callable[..., Path]) -> None:
    tasks = "".join(f"    - name: t{i}\n      scirpt: [x]\n" for i in range(LIMIT + 5))
    err, path = errors_of(write, HEAD + "workflow:\n  name: wf\n  tasks:\n" + tasks)
    assert err.total == LIMIT + 5
    assert len(err.errors) == LIMIT
    assert err.errors[0].where == f"{path}:6"
    text = str(err).splitlines()
    assert text[0] == f"{LIMIT + 5} mistakes in the workflow files:"
    assert text[-1] == "  ... and 5 more"
    assert len(text) == LIMIT + 2


def test_a_bad_set_is_reported_with_the_files_mistakes(write: Callable[..., Path]) -> None:
    text = HEAD + "variables:\n  N: 1\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      scirpt: [x]\n"
    err, path = errors_of(write, text, sets=["M=2"])
    assert lines(err) == [
        "--set: unknown variable 'M'",
        f"{path}:8: workflow.tasks[0].scirpt: unknown field 'scirpt'; did you mean 'script'?",
    ]


def test_the_cli_prints_one_line_per_mistake_and_exits_2(write: Callable[..., Path]) -> None:
    from click.testing import CliRunner

    from sflow.cli import main

    path = write(
        HEAD + "workflow:\n  name: wf\n  tasks:\n    - {name: a, scirpt: [x]}\n    - {name: b, scirpt: [x]}\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "sflow: error: 2 mistakes in the workflow files:",
        f"  {path}:5: workflow.tasks[0].scirpt: unknown field 'scirpt'; did you mean 'script'?",
        f"  {path}:6: workflow.tasks[1].scirpt: unknown field 'scirpt'; did you mean 'script'?",
    ]


def test_every_broken_expression_is_reported_with_the_field_mistakes(write: Callable[..., Path]) -> None:
    text = (
        HEAD
        + "workflow:\n  name: wf\n  tasks:\n"
        + "    - name: a\n      script:\n        - echo ${{ variables.X + }}\n"
        + "    - name: b\n      scirpt:\n        - echo ${{ ) }}\n"
    )
    err, path = errors_of(write, text)
    assert lines(err) == [
        f"{path}:7: workflow.tasks[0].script[0]: invalid expression: unexpected 'end of print statement'",
        f"{path}:9: workflow.tasks[1].scirpt: unknown field 'scirpt'; did you mean 'script'?",
        f"{path}:10: workflow.tasks[1].scirpt[0]: invalid expression: unexpected ')'",
    ]
