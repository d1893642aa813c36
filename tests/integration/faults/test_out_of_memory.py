"""A task over its `--mem` is killed by the memory cgroup (the fault cluster has task/cgroup with
ConstrainRAMSpace), and sflow says so: Slurm state OUT_OF_MEMORY, the task, its job and step ids,
its log and the log's tail."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_helpers import FaultCluster

from sflow.slurm.journal import ALLOCATION, read_journal

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 1
    time: "00:10:00"
    job_name: sflow-fault-oom
operators:
  - name: small
    type: srun
    mem: 100M
workflow:
  name: oom
  tasks:
    - name: hog
      operator: small
      script:
        - echo "allocating 400 MB"
        - python3 -c "b = bytearray(400 << 20); b[::4096] = b'x' * len(b[::4096]); print('sur' + 'vived')"
"""


def test_a_task_over_its_memory_limit_is_reported_out_of_memory(
    fault_cluster: FaultCluster, start_sflow
) -> None:
    if "TaskPlugin=task/cgroup" not in Path(fault_cluster.conf).read_text():
        pytest.skip("no writable memory cgroup on this machine: scripts/dev-slurm left cgroups off")
    run = start_sflow(WORKFLOW)
    assert run.wait() == 1, run.stderr
    task = run.summary()["tasks"]["hog"]
    assert task["state"] == "failed", task
    stderr = run.stderr
    assert "task 'hog' failed" in stderr, stderr
    assert "Slurm state: OUT_OF_MEMORY" in stderr, stderr
    (job,) = [e.slurm_id for e in read_journal(run.run_dir()) if e.kind == ALLOCATION]
    assert f"Slurm job: {job}" in stderr and f"Slurm step: {job}.0" in stderr, stderr
    assert "task 0: Out Of Memory" in stderr and "allocating 400 MB" in stderr, stderr  # the tail
    assert "survived" not in stderr
    assert f"log: {run.run_dir() / 'hog' / 'hog.log'}" in stderr, stderr
