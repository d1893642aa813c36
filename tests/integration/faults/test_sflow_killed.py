"""`sflow run` killed outright (SIGKILL): Slurm ends its allocation, and every Slurm id it held is
in its run directory."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fault_helpers import wait_for

from sflow.slurm.journal import ALLOCATION, STEP, read_journal

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 2
    time: "00:10:00"
    job_name: sflow-fault-sigkill
workflow:
  name: killed
  tasks:
    - name: long
      resources: {nodes: {count: 2}}
      script:
        - '[ "$SLURM_PROCID" != 0 ] || touch "$MARK"'
        - sleep 600
"""


def srun_processes(job: str) -> list[int]:
    """srun clients still running for `job` (they would be orphans of the killed sflow)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"srun") and job.encode() in argv:
            found.append(int(name))
    return found


def test_a_killed_sflow_leaves_no_allocation_and_its_ids_are_recorded(fault_cluster, start_sflow) -> None:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    run = start_sflow(WORKFLOW, env=fault_cluster.env(MARK=str(mark)))
    wait_for("the task to start", mark.exists)
    run_dir = run.run_dir()
    assert run_dir is not None
    entries = wait_for(
        "the step id in the journal",
        lambda: {e.kind for e in read_journal(run_dir)} >= {STEP} and read_journal(run_dir),
    )
    (allocation,) = [e for e in entries if e.kind == ALLOCATION]
    (step,) = [e for e in entries if e.kind == STEP]
    assert allocation.owned and step.slurm_id.startswith(f"{allocation.slurm_id}.")
    assert fault_cluster.job(allocation.slurm_id)["JobState"] == "RUNNING"

    run.proc.kill()
    run.proc.wait()
    wait_for(
        "Slurm to end the allocation of the killed sflow",
        lambda: fault_cluster.job(allocation.slurm_id).get("JobState") in ("COMPLETED", "CANCELLED"),
        timeout=60,
    )
    wait_for(
        "its steps to end",
        lambda: not [s for s in fault_cluster.steps() if s.startswith(allocation.slurm_id)],
    )
    wait_for("its srun processes to exit", lambda: not srun_processes(allocation.slurm_id))
