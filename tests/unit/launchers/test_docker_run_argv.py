"""The `docker run` command line of one attempt: names, labels, mounts, environment, GPUs, daemons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sflow.backends.docker import DockerBackend as DockerBackendImpl
from sflow.backends.placement import Placement
from sflow.launchers.base import LaunchContext
from sflow.launchers.docker_run import docker_argv
from sflow.schema.models import DockerBackend, DockerHost, DockerRunOperator

RUN = Path("/runs/r1")
ENV = {
    "SFLOW_WORKSPACE_DIR": "/ws",
    "SFLOW_OUTPUT_DIR": "/runs",
    "SFLOW_WORKFLOW_OUTPUT_DIR": str(RUN),
    "SFLOW_TASK_OUTPUT_DIR": str(RUN / "train"),
    "LR": "0.1",
}


def context(
    backend: DockerBackend, *, nodes: tuple[int, ...] = (0,), gpus: tuple[int, ...] = (), **operator: Any
) -> LaunchContext:
    impl = DockerBackendImpl("box", backend)
    alloc = impl.planned_allocation()
    chosen = tuple(alloc.nodes[i] for i in nodes)
    return LaunchContext(
        task="train/0",
        script_path=RUN / "train" / "train.sh",
        env=dict(ENV),
        cwd=Path("/ws"),
        log_path=RUN / "train" / "train.log",
        placement=Placement(chosen, tuple(gpus for _ in chosen) if gpus else ()),
        allocation=alloc,
        operator=DockerRunOperator(name="docker_run", **operator),
        attempt=2,
        run_id="20261207-wf-1a2b",
        shared_paths=("/ws", "/runs", str(RUN), str(RUN / "train")),
    )


def test_a_plain_task_on_the_local_daemon() -> None:
    argv = docker_argv(context(DockerBackend(name="box", image="img:1", extra_args=["--network=host"])))
    assert argv[:4] == ["docker", "run", "--rm", "--name=sflow-20261207-wf-1a2b-train_0-2"]
    assert argv[4:8] == ["--label", "sflow.run=20261207-wf-1a2b", "--label", "sflow.task=train/0"]
    assert [a for a in argv if a.startswith("-v=")] == [
        "-v=/ws:/ws",
        "-v=/runs:/runs",
        f"-v={RUN}:{RUN}",
        f"-v={RUN}/train:{RUN}/train",
    ]
    assert [a for a in argv if a.startswith("-e=")] == [f"-e={n}" for n in (*ENV, "NVIDIA_VISIBLE_DEVICES")]
    assert "0.1" not in argv  # values go through the client's environment, never the command line
    assert argv[-5:] == ["--network=host", "img:1", "bash", "-l", str(RUN / "train" / "train.sh")]


def test_operator_fields_win_and_add_to_the_backend_s() -> None:
    backend = DockerBackend(
        name="box", image="img:1", workdir="/w", mounts=["/data:/data:ro"], extra_args=["--a"]
    )
    argv = docker_argv(
        context(backend, image="img:2", mounts=["/m:/m"], extra_args=["--b --c"], pass_envs=False)
    )
    assert "img:2" in argv and "img:1" not in argv
    assert "--workdir=/w" in argv
    assert argv.index("-v=/data:/data:ro") < argv.index("-v=/m:/m")
    assert argv[argv.index("--a") : argv.index("--a") + 3] == ["--a", "--b", "--c"]
    assert "-e=LR" not in argv and "-e=SFLOW_TASK_OUTPUT_DIR" in argv


@pytest.mark.parametrize("asked", [None, "all"])
def test_gpus_are_narrowed_to_the_planned_slice(asked: str | None) -> None:
    backend = DockerBackend(name="box", image="img", gpus_per_node=8)
    ctx = context(backend, gpus=(4, 5))
    ctx.operator = DockerRunOperator(name="docker_run", gpus=asked)
    argv = docker_argv(ctx)
    assert '--gpus="device=4,5"' in argv
    assert "-e=CUDA_VISIBLE_DEVICES" in argv and "-e=NVIDIA_VISIBLE_DEVICES" not in argv


def test_hosts_are_daemons_and_get_the_script_as_text() -> None:
    backend = DockerBackend(
        name="pool",
        image="img",
        hosts=[
            DockerHost(name="a", docker_host="ssh://a", ip_address="10.0.0.1", gpus_per_node=2),
            DockerHost(name="b", context="b-ctx", ip_address="10.0.0.2", gpus_per_node=2),
        ],
    )
    ctx = context(backend, nodes=(1,))
    assert [n.name for n in ctx.allocation.nodes] == ["a", "b"]
    argv = docker_argv(ctx)
    assert argv[:3] == ["docker", "--context", "b-ctx"]
    assert not [a for a in argv if a.startswith("-v=")]  # nothing of ours is on another machine
    assert argv[-3:-1] == ["bash", "-lc"]


def test_a_host_needs_exactly_one_way_in() -> None:
    with pytest.raises(ValueError, match="set one of 'docker_host'"):
        DockerHost(name="a")
    with pytest.raises(ValueError, match="set one of 'docker_host'"):
        DockerHost(name="a", docker_host="ssh://a", context="c")
