"""The srun launcher against the real test cluster: steps inside one allocation made by the backend."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sflow.backends.base import Allocation
from sflow.backends.placement import Placement
from sflow.backends.slurm import SlurmBackend
from sflow.launchers.base import LaunchContext, get_launcher
from sflow.launchers.srun import StepAttempt
from sflow.schema.models import SrunOperator

PREFIX = f"sflow-it-srun-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")
SlurmCluster = Any
RENDEZVOUS = (
    'touch "$RV.$ME"; i=0; while [ $i -lt 300 ]; do '
    'n=$(ls "$RV".* 2>/dev/null | wc -l); [ "$n" -ge "$WANT" ] && break; sleep 0.1; i=$((i+1)); done; '
    '[ "$n" -ge "$WANT" ] || { echo "rendezvous timed out"; exit 9; }'
)


@pytest.fixture(scope="module")
def alloc(slurm_cluster: SlurmCluster) -> Iterator[Allocation]:
    """2 nodes, 2 GPUs and 2 CPUs each (a GPU step holds one CPU with --exact)."""
    config = {
        "job_name": f"{PREFIX}{uuid.uuid4().hex[:6]}",
        "partition": slurm_cluster.partition,
        "time": "00:10:00",
        "nodes": 2,
        "gpus_per_node": 2,  # for placement; the GPUs themselves are asked for below
        "extra_args": ["--ntasks-per-node=2", "--gpus-per-node=2"],
    }
    backend = SlurmBackend("cluster", config, environ={})
    allocation = asyncio.run(backend.allocate())
    try:
        yield allocation
    finally:
        asyncio.run(backend.release())


@pytest.fixture
def workdir(slurm_cluster: SlurmCluster) -> Path:
    path = Path(slurm_cluster.work_dir) / f"srun-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def ctx(
    alloc: Allocation,
    workdir: Path,
    task: str,
    script: str,
    nodes: tuple[int, ...] = (0,),
    gpus: int = 0,
    env: dict[str, str] | None = None,
    **op: Any,
) -> LaunchContext:
    path = workdir / f"{task}.sh"
    path.write_text(f"#!/usr/bin/env bash\n{script}\n")
    chosen = tuple(alloc.nodes[i] for i in nodes)
    placement = Placement(chosen, tuple(tuple(range(gpus)) for _ in chosen) if gpus else ())
    return LaunchContext(
        task=task,
        script_path=path,
        env={"SFLOW_TASK_NAME": task, **(env or {})},
        cwd=workdir,
        log_path=workdir / f"{task}.log",
        placement=placement,
        allocation=alloc,
        operator=SrunOperator(name="srun", **op),
    )


def run_all(*contexts: LaunchContext) -> list[Any]:
    async def go() -> list[Any]:
        launcher = get_launcher("srun")
        attempts = [await launcher.start(c) for c in contexts]
        return [await a.wait() for a in attempts]

    return asyncio.run(go())


def steps_of(job: str | None) -> list[str]:
    assert job
    out = subprocess.run(
        ["squeue", "--noheader", "--steps", "--jobs", job, "--format=%i"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_multi_node_step_sees_two_hostnames(alloc: Allocation, workdir: Path) -> None:
    c = ctx(alloc, workdir, "multi", 'echo "host=$(hostname) foo=$FOO"', nodes=(0, 1), env={"FOO": "bar"})
    (outcome,) = run_all(c)
    assert outcome.ok, outcome.reason
    lines = sorted(c.log_path.read_text().splitlines())
    assert lines == sorted(f"host={n.name} foo=bar" for n in alloc.nodes), lines
    assert len(alloc.nodes) == 2 and alloc.nodes[0].name != alloc.nodes[1].name
    assert outcome.info["slurm_job_id"] == alloc.job_id
    assert outcome.info["slurm_step_id"].startswith(f"{alloc.job_id}.")


def test_two_one_gpu_steps_get_different_gpus(alloc: Allocation, workdir: Path) -> None:
    rv = str(workdir / "rv")
    script = f'{RENDEZVOUS}; echo "CVD=$CUDA_VISIBLE_DEVICES"'
    contexts = [
        ctx(alloc, workdir, f"gpu{i}", script, gpus=1, env={"RV": rv, "ME": str(i), "WANT": "2"})
        for i in range(2)
    ]
    outcomes = run_all(*contexts)
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes]
    seen = {c.log_path.read_text().strip() for c in contexts}
    assert seen == {"CVD=0", "CVD=1"}


def test_cpu_steps_share_a_node_concurrently(alloc: Allocation, workdir: Path) -> None:
    # Three steps on one node that has 2 CPUs in the job: they only meet if the steps overlap.
    rv = str(workdir / "rv")
    contexts = [
        ctx(alloc, workdir, f"cpu{i}", RENDEZVOUS, env={"RV": rv, "ME": str(i), "WANT": "3"})
        for i in range(3)
    ]
    outcomes = run_all(*contexts)
    assert all(o.ok for o in outcomes), [
        (o.reason, c.log_path.read_text()) for o, c in zip(outcomes, contexts, strict=True)
    ]


def test_failing_step_reports_exit_code_and_step_id(alloc: Allocation, workdir: Path) -> None:
    (outcome,) = run_all(ctx(alloc, workdir, "fail", "echo about to fail; exit 3"))
    assert not outcome.ok and outcome.exit_code == 3
    step = outcome.info["slurm_step_id"]
    assert step.startswith(f"{alloc.job_id}.") and outcome.info["slurm_state"] == "FAILED"
    assert f"step {step} FAILED" in outcome.reason


async def _started(attempt: StepAttempt, marker: Path) -> None:
    deadline = time.monotonic() + 30
    while not (marker.exists() and attempt.step_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert marker.exists() and attempt.step_id


def test_stop_terms_the_task_and_leaves_no_step(alloc: Allocation, workdir: Path) -> None:
    up, down = workdir / "up", workdir / "down"
    script = f"trap 'touch {down}; exit 5' TERM; touch {up}; while true; do sleep 0.1; done"

    async def go() -> tuple[Any, str]:
        attempt = await get_launcher("srun").start(ctx(alloc, workdir, "svc", script))
        assert isinstance(attempt, StepAttempt)
        await _started(attempt, up)
        await asyncio.wait_for(attempt.stop(600), 60)  # ends with the task, not with the grace
        return await attempt.wait(), attempt.step_id or ""

    outcome, step = asyncio.run(go())
    assert down.exists(), "the task did not get SIGTERM before being killed"
    assert not outcome.ok and outcome.exit_code == 5
    assert outcome.info["slurm_state"] == "CANCELLED"
    assert step not in steps_of(alloc.job_id)


def test_stop_after_grace_kills_a_stubborn_step(alloc: Allocation, workdir: Path) -> None:
    up = workdir / "up"
    script = f"trap '' TERM; touch {up}; while true; do sleep 0.1; done"

    async def go() -> tuple[Any, str]:
        attempt = await get_launcher("srun").start(ctx(alloc, workdir, "stubborn", script))
        assert isinstance(attempt, StepAttempt)
        await _started(attempt, up)
        await asyncio.wait_for(attempt.stop(1.0), 60)  # a step that ignores TERM is killed after the grace
        return await attempt.wait(), attempt.step_id or ""

    outcome, step = asyncio.run(go())
    assert not outcome.ok
    assert step not in steps_of(alloc.job_id)
    assert [s for s in steps_of(alloc.job_id) if s.startswith(f"{alloc.job_id}.")] == []
