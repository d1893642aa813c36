"""Command-line flags merged into a workflow's backends: extra flags and the node pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.backends.docker import pool
from sflow.backends.slurm import salloc_request
from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow
from sflow.workflow.backend_args import add_extra_args, add_node_filters, host_list

BACKENDS = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    extra_args: ["--mem=8G", "--exclusive"]
    include_nodes: [n1]
  - name: box
    type: docker
    image: img
    extra_args: ["--shm-size=1g"]
    hosts:
      - {name: h1, docker_host: "ssh://h1"}
      - {name: h2, docker_host: "ssh://h2"}
      - {name: h3, docker_host: "ssh://h3"}
workflow:
  name: wf
  tasks:
    - {name: a, script: [echo]}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Callable[[str], WorkflowSpec]:
    def load(text: str = BACKENDS) -> WorkflowSpec:
        path = tmp_path / "wf.yaml"
        path.write_text(text)
        return load_workflow([path])

    return load


def test_extra_args_reach_slurm_and_docker_one_of_each_slurm_option(
    spec: Callable[[str], WorkflowSpec],
) -> None:
    wf = spec(BACKENDS)
    add_extra_args(wf, extra=["--mem=16G", "--shm-size=2g"], salloc=["--mem 32G"], docker=["--ipc=host"])
    slurm, docker = wf.backends["cluster"], wf.backends["box"]
    assert slurm.extra_args == ["--mem 32G", "--exclusive", "--shm-size=2g"]  # type: ignore[union-attr]
    assert docker.extra_args == ["--shm-size=1g", "--mem=16G", "--shm-size=2g", "--ipc=host"]  # type: ignore[union-attr]


def test_salloc_only_flags_leave_docker_alone(spec: Callable[[str], WorkflowSpec]) -> None:
    wf = spec(BACKENDS)
    add_extra_args(wf, salloc=["--qos=high"])
    assert wf.backends["box"].extra_args == ["--shm-size=1g"]  # type: ignore[union-attr]


def test_host_lists_take_commas_spaces_and_repeats() -> None:
    assert host_list(["a,b", "c d", "a"]) == ["a", "b", "c", "d"]


def test_node_filters_add_to_the_file_and_reach_salloc(spec: Callable[[str], WorkflowSpec]) -> None:
    wf = spec(BACKENDS)
    add_node_filters(wf, include=["n2"], exclude=["n9", "h2"])
    argv = salloc_request(wf.backends["cluster"])
    assert "--nodelist=n1,n2" in argv and "--exclude=n9,h2" in argv
    assert [h.name for h in pool(wf.backends["box"])] == []  # docker: only n1, n2, none of its hosts


def test_docker_hosts_are_narrowed_by_name(spec: Callable[[str], WorkflowSpec]) -> None:
    wf = spec(BACKENDS.replace("    include_nodes: [n1]\n", ""))
    add_node_filters(wf, exclude=["h2"])
    assert [h.name for h in pool(wf.backends["box"])] == ["h1", "h3"]
    wf = spec(BACKENDS.replace("    include_nodes: [n1]\n", ""))
    add_node_filters(wf, include=["h3", "h9"])
    assert [h.name for h in pool(wf.backends["box"])] == ["h3"]


def test_a_host_both_included_and_excluded_is_a_mistake(
    spec: Callable[[str], WorkflowSpec], tmp_path: Path
) -> None:
    wf = spec(BACKENDS)
    with pytest.raises(SpecError) as err:
        add_node_filters(wf, exclude=["n1"])
    assert err.value.message.startswith("backend 'cluster': n1 both included and excluded")
    path = tmp_path / "both.yaml"
    path.write_text(BACKENDS.replace("include_nodes: [n1]", "include_nodes: [n1]\n    exclude_nodes: [n1]"))
    with pytest.raises(SpecError) as err:
        load_workflow([path])
    assert (
        err.value.field == "backends.cluster"
        and "n1 in both include_nodes and exclude_nodes" in err.value.message
    )


def test_wait_for_gpus_from_the_command_line_replaces_every_docker_backend_s(
    spec: Callable[[str], WorkflowSpec],
) -> None:
    from sflow.workflow.backend_args import set_wait_for_gpus

    wf = spec(BACKENDS.replace("    image: img\n", "    image: img\n    wait_for_gpus: 30\n"))
    set_wait_for_gpus(wf, None)
    assert wf.backends["box"].wait_for_gpus == 30
    set_wait_for_gpus(wf, 0)
    assert wf.backends["box"].wait_for_gpus == 0
    assert not hasattr(wf.backends["cluster"], "wait_for_gpus")
