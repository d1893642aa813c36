"""nv-sflow's semantics on the real test cluster: a task's GPU count is its total across its nodes,
and the schema's SFLOW_BACKEND_* / SFLOW_TASK_* variables are Slurm's own."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slurm
SlurmCluster = Any

WORKFLOW = """\
version: "0.1"
backends:
- name: cluster
  type: slurm
  default: true
  partition: "{partition}"
  time: "00:10:00"
  nodes: 2
  gpus_per_node: 2
  extra_args: ["--gpus-per-node=2"]
  job_name: "{job_name}"
workflow:
  name: compat
  tasks:
    - name: spread
      resources: {{nodes: {{count: 2}}, gpus: {{count: 4}}}}
      script:
        - echo "gpus $SFLOW_TASK_NODE_NAME $CUDA_VISIBLE_DEVICES"
    - name: ids
      resources: {{nodes: {{count: 2}}}}
      script:
        - echo "job $SFLOW_BACKEND_JOB_ID $SFLOW_BACKEND_NODELIST $SFLOW_BACKEND_NUM_NODES"
        - echo "step $SFLOW_BACKEND_STEP_ID $SFLOW_TASK_NODE_NAME $SFLOW_TASK_NODE_INDEX"
        - echo "rank $SFLOW_TASK_PROCESS_ID $SFLOW_TASK_LOCAL_PROCESS_ID $SFLOW_TASK_NUM_PROCESSES"
"""


@pytest.fixture(scope="module")
def run(slurm_cluster: SlurmCluster) -> tuple[Path, str]:
    """One run of the workflow above: its run directory and its Slurm job id."""
    name = f"sflow-it-compat-{uuid.uuid4().hex[:6]}"
    workflow = WORKFLOW.format(partition=slurm_cluster.partition, job_name=name)
    done = slurm_cluster.sflow_run(workflow, "-q", label="compat")
    assert done.done.returncode == 0, done.done.stderr
    run_dir = done.run_dir
    log = (run_dir / "ids" / "ids.log").read_text()
    job = re.search(r"^job (\d+) ", log, re.M)
    assert job, log
    return run_dir, job.group(1)


def test_a_two_node_task_with_four_gpus_gets_two_on_each_node(run: tuple[Path, str]) -> None:
    run_dir, _ = run
    lines = sorted(ln.split()[1:] for ln in (run_dir / "spread" / "spread.log").read_text().splitlines())
    assert len(lines) == 2 and lines[0][0] != lines[1][0], lines  # one task on each of two nodes
    assert [len(gpus.split(",")) for _, gpus in lines] == [2, 2], lines


def test_backend_and_task_variables_are_what_slurm_says(run: tuple[Path, str]) -> None:
    run_dir, job = run
    show = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True)
    fields = dict(re.findall(r"(\w+)=(\S+)", show.stdout))
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", fields["NodeList"]], capture_output=True, text=True, check=True
    ).stdout.split()
    log = (run_dir / "ids" / "ids.log").read_text().splitlines()
    jobs = {tuple(ln.split()[1:]) for ln in log if ln.startswith("job ")}
    assert jobs == {(fields["JobId"], fields["NodeList"], fields["NumNodes"])}
    steps = sorted(tuple(ln.split()[1:]) for ln in log if ln.startswith("step "))
    assert [node for _, node, _ in steps] == sorted(hosts)
    assert sorted(index for _, _, index in steps) == ["0", "1"] and len({s for s, _, _ in steps}) == 1
    ranks = sorted(tuple(ln.split()[1:]) for ln in log if ln.startswith("rank "))
    assert ranks == [("0", "0", "2"), ("1", "0", "2")]
