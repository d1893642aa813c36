"""`sflow cancel RUN` stops what a run left behind: here the step of a killed sflow that ran inside
an allocation it did not make (Slurm does not end that allocation when sflow dies: it is the user's)."""

from __future__ import annotations

import subprocess
import sys
import uuid

from fault_helpers import wait_for

from sflow.slurm.journal import STEP, read_journal

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
workflow:
  name: inside
  tasks:
    - name: long
      script:
        - 'touch "$MARK"'
        - sleep 600
"""


def test_cancel_stops_the_steps_a_killed_sflow_left_and_only_them(fault_cluster, start_sflow) -> None:
    name = f"sflow-fault-outer-{uuid.uuid4().hex[:6]}"
    fault_cluster.slurm("salloc", "--no-shell", "-N", "1", "-J", name, "-t", "10")
    outer = fault_cluster.slurm("squeue", "-h", "-n", name, "-o", "%i").split()[0]
    nodes = fault_cluster.job(outer)["NodeList"]
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    env = fault_cluster.env(MARK=str(mark), SLURM_JOB_ID=outer, SLURM_JOB_NODELIST=nodes)
    run = start_sflow(WORKFLOW, env=env)
    wait_for("the task to start", mark.exists)
    run_dir = run.run_dir()
    assert run_dir is not None
    steps = wait_for(
        "the step id in the journal", lambda: [e for e in read_journal(run_dir) if e.kind == STEP]
    )
    step = steps[0].slurm_id
    run.proc.kill()
    run.proc.wait()
    assert step in fault_cluster.steps()  # left running: the allocation is not sflow's to end

    def cancel() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "sflow", "cancel", str(run_dir)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=fault_cluster.env())

    first = cancel()
    assert first.returncode == 0, first.stderr
    assert f"step {step}: cancelled (was RUNNING)" in first.stdout
    wait_for("the step to end", lambda: step not in fault_cluster.steps())
    assert fault_cluster.job(outer)["JobState"] == "RUNNING"  # the user's allocation is left alone
    again = cancel()
    assert again.returncode == 0 and f"step {step}: already ended" in again.stdout
    fault_cluster.slurm("scancel", outer)


def test_cancel_of_a_live_run_stops_it_and_its_allocation(fault_cluster, start_sflow) -> None:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    workflow = WORKFLOW.replace(
        "    default: true\n", "    default: true\n    nodes: 1\n    job_name: sflow-fault-live\n"
    )
    run = start_sflow(workflow, env=fault_cluster.env(MARK=str(mark)))
    wait_for("the task to start", mark.exists)
    run_dir = run.run_dir()
    assert run_dir is not None
    done = subprocess.run(
        [sys.executable, "-m", "sflow", "cancel", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        env=fault_cluster.env(),
    )
    assert done.returncode == 0, done.stderr
    assert "sent SIGTERM to sflow" in done.stdout
    assert run.wait(timeout=60) == 143  # stopped cleanly, as SIGTERM asks
    assert not fault_cluster.live_jobs()
