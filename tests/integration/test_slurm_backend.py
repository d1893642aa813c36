"""The slurm backend against the real test cluster: salloc + release, refusal, cancel while pending,
reuse inside `sbatch --wrap`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from sflow.backends.slurm import SlurmBackend
from sflow.errors import BackendError

PREFIX = f"sflow-it-backend-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")
SlurmCluster = Any  # the fixture type lives in conftest.py (not importable)


def _name(tag: str) -> str:
    return f"{PREFIX}{tag}-{uuid.uuid4().hex[:6]}"


def _config(cluster: SlurmCluster, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_name": name,
        "partition": cluster.partition,
        "account": "sflow-it",
        "time": "00:05:00",
        "nodes": 2,
        **extra,
    }


def _wait_no_jobs(squeue_ours: Any, prefix: str, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while (left := squeue_ours(prefix)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_salloc_then_release_leaves_no_job(slurm_cluster: SlurmCluster, squeue_ours: Any) -> None:
    name = _name("alloc")
    config = _config(slurm_cluster, name, gpus_per_node=1, extra_args=["--gpus-per-node=1"])
    backend = SlurmBackend("cluster", config, environ={})

    async def go() -> tuple[Any, list]:
        alloc = await backend.allocate()
        during = squeue_ours(name)
        await backend.release()
        return alloc, during

    alloc, during = asyncio.run(go())
    assert [j.state for j in during] == ["RUNNING"] and during[0].job_id == alloc.job_id
    assert not alloc.reused
    assert len({n.name for n in alloc.nodes}) == 2
    assert {n.name for n in alloc.nodes} <= set(slurm_cluster.nodes)
    assert all(n.num_gpus == 1 and n.ip_address == "127.0.0.1" for n in alloc.nodes)
    assert squeue_ours(name) == []  # release() returns only once the job is gone


def test_refused_request_is_a_backend_error_with_slurms_message(
    slurm_cluster: SlurmCluster, squeue_ours: Any
) -> None:
    name = _name("toobig")
    backend = SlurmBackend("cluster", _config(slurm_cluster, name, nodes=5), environ={})
    with pytest.raises(BackendError, match="Node count specification invalid"):
        asyncio.run(backend.allocate())
    assert squeue_ours(name) == []


def test_cancelling_a_pending_allocation_leaves_nothing(
    slurm_cluster: SlurmCluster, squeue_ours: Any
) -> None:
    # --begin keeps the request pending: what a Ctrl-C on a busy cluster would meet.
    name = _name("pending")
    config = _config(slurm_cluster, name, extra_args=["--begin=now+1hour"])
    backend = SlurmBackend("cluster", config, environ={})

    async def go() -> None:
        task = asyncio.ensure_future(backend.allocate())
        deadline = time.monotonic() + 20
        while backend.job_id is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert backend.job_id, "salloc never printed its job id"
        assert [j.state for j in squeue_ours(name)] == ["PENDING"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert _wait_no_jobs(squeue_ours, name) == []


REUSE_PROBE = """
import asyncio, json, os
from sflow.backends.slurm import SlurmBackend
async def main():
    b = SlurmBackend("cluster", {"nodes": 1, "job_name": os.environ["INNER_NAME"]})
    a = await b.allocate()
    await b.release()
    print(json.dumps({"env_job": os.environ["SLURM_JOB_ID"], "job": a.job_id, "reused": a.reused,
                      "nodes": [n.name for n in a.nodes], "gpus": [n.num_gpus for n in a.nodes]}))
asyncio.run(main())
"""


def test_inside_sbatch_the_allocation_is_reused(slurm_cluster: SlurmCluster, squeue_ours: Any) -> None:
    name = _name("reuse")
    out = f"{slurm_cluster.work_dir}/{name}.out"
    probe = f"{slurm_cluster.work_dir}/{name}.py"
    with open(probe, "w") as fh:
        fh.write(REUSE_PROBE)
    submit = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-J",
            name,
            "-N",
            "2",
            "--gpus-per-node=2",
            "-t",
            "2",
            "-o",
            out,
            "--wrap",
            f"{sys.executable} {probe}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**slurm_cluster.env(), "INNER_NAME": f"{name}-inner"},
    )
    job = submit.stdout.strip().split(";")[0]
    assert _wait_no_jobs(squeue_ours, name, timeout=60) == []
    with open(out) as fh:
        text = fh.read()
    result = json.loads(text.strip().splitlines()[-1])
    assert result["job"] == result["env_job"] == job and result["reused"] is True
    assert len(result["nodes"]) == 2 and result["gpus"] == [2, 2]
    state = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in state, text  # release() did not cancel the job we ran inside
    # No second allocation: a salloc would have used the config's job name (finished jobs stay listed).
    inner = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--name", f"{name}-inner", "--format=%i"],
        capture_output=True,
        text=True,
    )
    assert inner.stdout.strip() == ""
