"""A task's `outputs`: the regex form (with `name`) and nv-sflow's template form (without), told
apart by shape; each mistake is one error naming file, line and field."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow

WF = """
version: "0.1"
workflow:
  name: wf
  tasks:
    - name: bench
      script: [echo hi]
      outputs:
{entries}
"""


def outputs_yaml(*entries: str) -> str:
    return WF.format(entries="\n".join(f"        {entry}" for entry in entries))


def test_both_forms_load_side_by_side(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(
        outputs_yaml(
            '- pattern: "TTFT: {ttft:f} ms"',
            '- {pattern: "model={model} n={n:d}", source: stderr}',
            "- {name: steps, pattern: 'steps=(\\d+)', type: integer}",
        )
    )
    template, with_source, regex = spec.workflow.tasks[0].outputs
    assert (template.name, template.pattern, template.source, template.type) == (
        None,
        "TTFT: {ttft:f} ms",
        "stdout",  # nv-sflow's default
        None,
    )
    assert (with_source.name, with_source.source) == (None, "stderr")
    assert (regex.name, regex.pattern, regex.type) == ("steps", "steps=(\\d+)", "integer")


def test_a_template_may_be_an_expression_rendered_at_run_time(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(outputs_yaml('- pattern: "${{ workflow.name }}: {v:d}"'))
    assert spec.workflow.tasks[0].outputs[0].pattern == "${{ workflow.name }}: {v:d}"


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        (
            '- pattern: "TTFT: {ttft:zz} ms"',
            "pattern",
            "invalid output template 'TTFT: {ttft:zz} ms': format spec 'zz' not recognised",
        ),
        ('- pattern: "loss={loss:f} acc={loss:d}"', "pattern", "field type 'd' for field \"loss\""),
        ('- pattern: "{x!r}"', "pattern", "a field's name is letters, digits and '_'"),
        ('- pattern: "TTFT: {} ms"', "pattern", "names no value: write fields as {name} or {name:type}"),
        ("- pattern: 'loss=([0-9.]+)'", "pattern", "or give the output a 'name'"),
        ('- {pattern: "n={n:d}", type: float}', "type", "'type' goes with 'name' (a regex)"),
        ('- {pattern: "n={n:d}", source: ""}', "source", "at least 1 character"),
        ("- {pattern: 'n={n:d}', metrics: {n: {type: int}}}", "metrics", "unknown field 'metrics'"),
        ("- {name: n, pattern: 'n=[0-9]+'}", "pattern", "exactly one group or a named group, found 0"),
    ],
)
def test_a_bad_output_is_one_error_at_its_field(
    write: Callable[..., Path], entry: str, field: str, message: str
) -> None:
    path = write(outputs_yaml(entry))
    with pytest.raises(SpecError) as err:
        load_workflow([path])
    assert err.value.where == f"{path}:8"  # the line of the entry
    assert err.value.field == f"workflow.tasks[0].outputs[0].{field}"
    assert message in err.value.message


def test_parse_is_imported_only_for_a_workflow_with_a_template(write: Callable[..., Path]) -> None:
    regex_only = write(outputs_yaml("- {name: steps, pattern: 'steps=(\\d+)'}"), name="regex.yaml")
    template = write(outputs_yaml('- pattern: "steps={steps:d}"'), name="template.yaml")
    code = "import sys\nfrom sflow.schema import load_workflow\nload_workflow([sys.argv[1]])\nprint('parse' in sys.modules)"
    imported = [
        subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for path in (regex_only, template)
    ]
    assert imported == ["False", "True"]
