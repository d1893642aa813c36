"""A task that asks for no nodes or GPUs runs on every node of its Slurm backend (as nv-sflow plans
it): one srun rank per node of a 2-node allocation; one asking for a GPU stays on one node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

PREFIX = "sflow-it-allnodes-"
pytestmark = pytest.mark.slurm
SlurmCluster = Any

WORKFLOW = """\
version: "0.1"
backends:
- name: cluster
  type: slurm
  default: true
  partition: "{partition}"
  time: "00:05:00"
  nodes: 2
  gpus_per_node: 2
  extra_args: ["--gpus-per-node=2"]
  job_name: "{job_name}"
workflow:
  name: everywhere
  tasks:
    - name: plain
      script:
        - echo "rank $SLURM_PROCID of $SLURM_NTASKS on $(hostname)"
    - name: one_gpu
      resources: {{gpus: {{count: 1}}}}
      script:
        - echo "rank $SLURM_PROCID of $SLURM_NTASKS on $(hostname) gpus=$CUDA_VISIBLE_DEVICES"
"""


def test_a_task_without_resources_runs_one_rank_on_each_node(slurm_cluster: SlurmCluster) -> None:
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    workflow = WORKFLOW.format(partition=slurm_cluster.partition, job_name=name)
    run = slurm_cluster.sflow_run(workflow, "-q", label="allnodes")
    assert run.done.returncode == 0, run.done.stderr
    run_dir = run.run_dir
    plain = sorted(ln.split() for ln in (run_dir / "plain" / "plain.log").read_text().splitlines())
    assert [(w[1], w[3]) for w in plain] == [("0", "2"), ("1", "2")], plain  # two ranks ...
    assert len({w[5] for w in plain}) == 2, plain  # ... one on each node
    (gpu,) = [ln.split() for ln in (run_dir / "one_gpu" / "one_gpu.log").read_text().splitlines()]
    assert (gpu[1], gpu[3], gpu[6]) == ("0", "1", "gpus=0"), gpu
