"""Tests of the test cluster itself (scripts/dev-slurm): if these fail, every other integration test
is suspect."""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Any

import pytest

# The fixtures come from tests/integration/conftest.py (not importable as a module: no __init__.py).
SlurmCluster = Any

PREFIX = f"sflow-it-cluster-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")


def _name(tag: str) -> str:
    return f"{PREFIX}{tag}-{uuid.uuid4().hex[:6]}"


def _run(cluster: SlurmCluster, *cmd: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cluster.work_dir,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} -> exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_four_nodes_schedulable(slurm_cluster: SlurmCluster, squeue_ours) -> None:
    assert slurm_cluster.nodes == ("node1", "node2", "node3", "node4")
    assert slurm_cluster.partition == "debug"
    out = _run(slurm_cluster, "sinfo", "--noheader", "--Node", "--format=%N|%P|%t|%c|%m|%G")
    rows = {}
    for line in out.splitlines():
        node, part, state, cpus, mem, gres = line.split("|")
        rows[node] = (part, state, cpus, mem, gres)
    assert sorted(rows) == list(slurm_cluster.nodes)
    busy = squeue_ours("")  # other test runs may be using the cluster
    for node, (part, state, cpus, mem, gres) in rows.items():
        assert part == "debug*", node
        assert (cpus, mem) == ("4", "4000"), node
        assert gres.startswith("gpu:2"), (node, gres)
        # Responding ('*' = not responding) and schedulable; idle whenever nothing runs there.
        # ('comp': a job that just ended is being cleaned up, perhaps another test run's)
        assert state in {"idle", "mix", "alloc", "comp"}, (node, state)
        if not any(node in job.nodes for job in busy):
            assert state in {"idle", "comp"}, (node, state)


def test_srun_two_nodes_have_distinct_hostnames(slurm_cluster: SlurmCluster) -> None:
    out = _run(slurm_cluster, "srun", "-N", "2", "-n", "2", "-J", _name("srun"), "-t", "1", "hostname")
    names = out.split()
    assert len(names) == 2 and len(set(names)) == 2, out
    assert set(names) <= set(slurm_cluster.nodes)


def test_hostname_matches_slurmd_nodename(slurm_cluster: SlurmCluster) -> None:
    out = _run(
        slurm_cluster,
        "srun",
        "-N",
        "4",
        "-n",
        "4",
        "-J",
        _name("uts"),
        "-t",
        "1",
        "sh",
        "-c",
        'echo "$(hostname) $SLURMD_NODENAME"',
    )
    pairs = [line.split() for line in out.splitlines()]
    assert sorted(p[0] for p in pairs) == list(slurm_cluster.nodes)
    assert all(p[0] == p[1] for p in pairs), out


def test_sbatch_reaches_completed(slurm_cluster: SlurmCluster) -> None:
    # Any account name is accepted: there is no accounting database.
    out = _run(
        slurm_cluster,
        "sbatch",
        "--parsable",
        "-A",
        "anything",
        "-p",
        slurm_cluster.partition,
        "-J",
        _name("sbatch"),
        "-o",
        "/dev/null",
        "--wrap",
        "true",
    )
    job_id = out.strip().split(";")[0]
    assert job_id.isdigit(), out
    assert slurm_cluster.wait_final(job_id) == "COMPLETED"
    # MinJobAge keeps finished jobs visible to scontrol (no sacct here).
    assert slurm_cluster.job_field(job_id, "JobState") == "COMPLETED"


def test_failing_batch_job_is_failed(slurm_cluster: SlurmCluster) -> None:
    out = _run(
        slurm_cluster, "sbatch", "--parsable", "-J", _name("fail"), "-o", "/dev/null", "--wrap", "exit 3"
    )
    job_id = out.strip().split(";")[0]
    assert slurm_cluster.wait_final(job_id) == "FAILED"
    show = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30
    ).stdout
    assert "ExitCode=3:0" in show, show


def test_impossible_request_rejected_at_submission(slurm_cluster: SlurmCluster) -> None:
    # EnforcePartLimits=ALL: more nodes than exist fails now instead of pending forever.
    proc = subprocess.run(
        ["sbatch", "-N", "5", "-J", _name("toobig"), "-o", "/dev/null", "--wrap", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=slurm_cluster.work_dir,
    )
    assert proc.returncode != 0
    assert "error" in proc.stderr.lower(), proc.stderr


def test_gpus_per_node_sets_cuda_visible_devices(slurm_cluster: SlurmCluster) -> None:
    out = _run(slurm_cluster, "srun", "--gpus-per-node=1", "-J", _name("gpu"), "-t", "1", "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env.get("CUDA_VISIBLE_DEVICES") in {"0", "1"}, out
    assert env.get("SLURM_GPUS_ON_NODE") == "1"

    out = _run(slurm_cluster, "srun", "-N", "1", "--gres=gpu:2", "-J", _name("gpu2"), "-t", "1", "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env.get("CUDA_VISIBLE_DEVICES") == "0,1", out


def test_concurrent_one_gpu_steps_get_different_gpus(slurm_cluster: SlurmCluster) -> None:
    # Two 1-GPU steps running at the same time inside one 2-GPU allocation. Each step waits until
    # the other has started (a rendezvous through files), which proves they overlap.
    tag = uuid.uuid4().hex[:8]
    rv = f"{slurm_cluster.work_dir}/rv-{tag}"
    step = (
        "srun -n1 --exact --gres=gpu:1 sh -c '"
        "touch {rv}.$0; i=0; while [ ! -e {rv}.$1 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
        '[ -e {rv}.$1 ] && echo "$0 $CUDA_VISIBLE_DEVICES"'
        "' {me} {other}"
    )
    script = (
        f"{step.format(rv=rv, me='a', other='b')} & "
        f"{step.format(rv=rv, me='b', other='a')} & "
        "wait; rm -f " + f"{rv}.a {rv}.b"
    )
    out = _run(
        slurm_cluster,
        "salloc",
        "-N",
        "1",
        "-n",
        "2",
        "--gres=gpu:2",
        "-J",
        _name("steps"),
        "-t",
        "1",
        "sh",
        "-c",
        script,
        timeout=90,
    )
    lines = sorted(line.split() for line in out.splitlines() if line[:2] in {"a ", "b "})
    assert [who for who, _ in lines] == ["a", "b"], out
    assert {gpu for _, gpu in lines} == {"0", "1"}, out
