"""slurmctld is away while a dependent step starts: srun fails, sflow starts the step again once the
controller is back, within the same attempt (the task has no retries)."""

from __future__ import annotations

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
    job_name: sflow-fault-ctld
workflow:
  name: ctldrestart
  tasks:
    - name: first
      script:
        - 'touch "$MARK"'
        - 'while [ ! -e "$MARK.go" ]; do sleep 0.1; done'
    - name: second
      depends_on: [first]
      script:
        - echo second ran
"""


def test_a_step_started_while_the_controller_restarts_runs_once_it_is_back(
    fault_cluster, start_sflow
) -> None:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    run = start_sflow(WORKFLOW, env=fault_cluster.env(MARK=str(mark)))
    wait_for("the first task to start", mark.exists)
    fault_cluster.stop_controller()
    mark.with_name(mark.name + ".go").touch()
    second_log = lambda: run.run_dir() / "second" / "second.log"  # noqa: E731
    wait_for(
        "srun of the second task to fail while the controller is away",
        lambda: second_log().exists() and "sflow: Slurm could not start the step" in second_log().read_text(),
        timeout=180,
    )
    fault_cluster.restore()
    code = run.wait(timeout=400)
    summary = run.summary()
    assert code == 0, run.stderr
    second = summary["tasks"]["second"]
    assert second["state"] == "succeeded" and second["attempts"] == 1
    log = second_log().read_text()
    assert "Unable to contact slurm controller" in log and log.rstrip().endswith("second ran")
