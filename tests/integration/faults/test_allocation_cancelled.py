"""The allocation is cancelled from outside while a task with retries runs: the run ends at once
with that reason (who cancelled it, from the cluster's accounting), and the task is not retried on
the dead job."""

from __future__ import annotations

import os
import pwd
import uuid

from fault_helpers import wait_for

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 2
    time: "00:10:00"
    job_name: sflow-fault-scancel
workflow:
  name: scancelled
  tasks:
    - name: victim
      retries: {count: 3, interval: 1}
      script:
        - 'touch "$MARK"'
        - sleep 600
    - name: bystander
      script:
        - sleep 600
"""


def test_an_allocation_cancelled_from_outside_ends_the_run_with_that_reason(
    fault_cluster, start_sflow
) -> None:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    run = start_sflow(WORKFLOW, env=fault_cluster.env(MARK=str(mark)))
    wait_for("the task to start", mark.exists)
    job = fault_cluster.slurm("squeue", "-h", "-n", "sflow-fault-scancel", "-o", "%i").split()[0]
    fault_cluster.slurm("scancel", job)
    code = run.wait(timeout=120)
    summary, stderr = run.summary(), run.stderr
    assert code == 1, stderr
    by = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"  # sacct: "CANCELLED by <uid>"
    reason = f"Slurm allocation {job} (backend 'cluster') was cancelled by {by}"
    assert summary["stop_reason"] == reason
    victim = summary["tasks"]["victim"]
    assert victim["state"] == "failed" and victim["attempts"] == 1  # no retry on a dead job
    assert victim["slurm_step_id"].startswith(f"{job}.")
    assert summary["tasks"]["bystander"]["state"] in ("cancelled", "failed")
    assert "workflow failed after" in stderr and reason in stderr
    assert not (run.run_dir() / "victim" / "victim.attempt1.log").exists()  # one attempt, one log
