"""`resources.*.release_after` and script lines YAML reads as mappings, from nv-sflow's reference."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec
from sflow.schema.normalize import ScriptLineWarning

Load = Callable[..., WorkflowSpec]


def one_task(resources: str, probes: str = "") -> str:
    return f"""
version: "0.1"
backends:
  - {{name: box, type: local, gpus_per_node: 4}}
workflow:
  name: r
  tasks:
    - name: t
      script: ["true"]
      resources: {resources}
{probes}
"""


@pytest.mark.parametrize("when", ["task_ready", "task_completion", "workflow_completion"])
def test_release_after_takes_the_three_moments_on_gpus_and_nodes(load: Load, when: str) -> None:
    task = load(one_task(f"{{gpus: {{count: 1, release_after: {when}}}}}")).task_by_name("t")
    assert task.resources is not None and task.resources.gpus is not None
    assert task.resources.gpus.release_after == when and task.release_after() == when
    task = load(one_task(f"{{nodes: {{count: 1, release_after: {when}}}}}")).task_by_name("t")
    assert task.release_after() == when


def test_another_moment_is_a_mistake_at_its_line(load: Load) -> None:
    with pytest.raises(SpecError) as err:
        load(one_task("{gpus: {count: 1, release_after: never}}"))
    assert "wf.yaml:9" in str(err.value) and "resources.gpus.release_after" in str(err.value)


def test_nodes_and_gpus_are_held_until_the_later_of_their_moments(load: Load) -> None:
    text = one_task(
        "{nodes: {release_after: task_ready}, gpus: {count: 1, release_after: workflow_completion}}"
    )
    assert load(text).task_by_name("t").release_after() == "workflow_completion"


def test_left_out_a_service_holds_to_the_end_and_other_tasks_to_their_own(load: Load) -> None:
    assert load(one_task("{gpus: {count: 1}}")).task_by_name("t").release_after() == "task_completion"
    probes = "      probes:\n        readiness: {tcp_port: {port: 8000}}"
    service = load(one_task("{gpus: {count: 1}}", probes)).task_by_name("t")
    assert service.release_after() == "workflow_completion"


SCRIPT = """
version: "0.1"
workflow:
  name: s
  tasks:
    - name: t
      script:
        - echo "GPUs: $CUDA_VISIBLE_DEVICES"
        - echo port: 8080   # the port
        - plain line
"""


def test_a_script_line_yaml_reads_as_a_mapping_is_the_line_written_with_a_warning(load: Load) -> None:
    with pytest.warns(ScriptLineWarning) as caught:
        spec = load(SCRIPT)
    assert spec.task_by_name("t").script == [
        'echo "GPUs: $CUDA_VISIBLE_DEVICES"',
        "echo port: 8080",
        "plain line",
    ]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "wf.yaml:7: script line read as a mapping" in messages[0]
    assert "wf.yaml:8: " in messages[1] and "'echo port: 8080'" in messages[1]


def test_a_quoted_line_gives_no_warning_and_a_nested_mapping_is_still_a_mistake(load: Load) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            load(
                SCRIPT.replace('- echo "GPUs', "- 'echo \"GPUs")
                .replace('DEVICES"\n', "DEVICES\"'\n")
                .replace("- echo port: 8080   # the port", "- echo port")
            )
            .task_by_name("t")
            .script[0]
            == 'echo "GPUs: $CUDA_VISIBLE_DEVICES"'
        )
    with pytest.raises(SpecError, match="script"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load(SCRIPT.replace("- plain line", "- key: {a: 1}"))
