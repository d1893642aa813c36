"""A node's slurmd dies during a run: the release at the end says what it waits for, instead of
waiting in silence until the node is marked down."""

from __future__ import annotations

import os
import signal
import uuid

from fault_helpers import wait_for

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 1
    time: "00:10:00"
    job_name: sflow-fault-slurmd
workflow:
  name: slurmddies
  tasks:
    - name: work
      script:
        - 'hostname > "$MARK.tmp" && mv "$MARK.tmp" "$MARK"'
        - 'while [ ! -e "$MARK.go" ]; do sleep 0.1; done'
        - echo done
"""


def test_release_names_the_node_it_waits_for(fault_cluster, start_sflow) -> None:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    run = start_sflow(WORKFLOW, env=fault_cluster.env(MARK=str(mark)))
    node = str(wait_for("the task to start", lambda: mark.exists() and mark.read_text().strip()))
    slurmd = int((fault_cluster.lab_dir / "run" / f"slurmd-{node}.pid").read_text().split()[0])
    os.kill(slurmd, signal.SIGKILL)  # the task and its slurmstepd live on
    mark.with_name(mark.name + ".go").touch()
    code = run.wait(timeout=300)
    stderr = run.stderr
    assert code == 0, stderr  # the work itself completed
    job = run.summary()["backends"]["cluster"]["job_id"]
    assert f"job {job} is still COMPLETING" in stderr, stderr
    assert f"{node} has not confirmed that the job's processes ended" in stderr, stderr
    assert "waiting up to 120s" in stderr
