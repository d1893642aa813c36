"""Builders shared by the srun launcher tests: launch contexts and allocations without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sflow.backends.base import Allocation
from sflow.backends.placement import Node, Placement
from sflow.launchers.base import LaunchContext
from sflow.schema.models import SrunOperator


def allocation(n: int = 2, gpus: int = 2, job_id: str | None = "42") -> Allocation:
    nodes = [Node(f"node{i + 1}", "127.0.0.1", i, gpus) for i in range(n)]
    return Allocation("cluster", nodes, job_id=job_id)


def context(
    *,
    nodes: tuple[int, ...] = (0,),
    gpus: int = 0,
    env: dict[str, str] | None = None,
    alloc: Allocation | None = None,
    tmp: Path = Path("/runs/r1/train"),
    shared_paths: tuple[str, ...] = (),
    **operator: Any,
) -> LaunchContext:
    alloc = alloc or allocation()
    chosen = tuple(alloc.nodes[i] for i in nodes)
    placement = Placement(chosen, tuple(tuple(range(gpus)) for _ in chosen) if gpus else ())
    return LaunchContext(
        task="train",
        script_path=tmp / "train.sh",
        env=dict(env or {"SFLOW_TASK_NAME": "train"}),
        cwd=tmp,
        log_path=tmp / "train.attempt-1.log",
        placement=placement,
        allocation=alloc,
        operator=SrunOperator(name="srun", **operator),
        shared_paths=shared_paths,
    )
