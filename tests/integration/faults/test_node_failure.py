"""A node that fails under a running step: the task fails and the run names the node and the allocation.

srun exits 0 here (Slurm 22.05) once the ranks of the other node have exited 0; sflow used to
record that as success.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from fault_helpers import FaultCluster, wait_for

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 2
    time: "00:10:00"
    job_name: sflow-fault-node
workflow:
  name: nodefail
  tasks:
    - name: two_nodes
      resources: {nodes: {count: 2}}
      script:
        - 'if [ "$SLURM_PROCID" = 0 ]; then echo "rank 0 done"; exit 0; fi'
        - 'hostname > "$MARK.tmp" && mv "$MARK.tmp" "$MARK"'
        - sleep 600
"""


def _rank_records(run_dir: Path | None) -> list[str]:
    ranks = run_dir / "two_nodes" / "two_nodes.log.step.ranks" if run_dir else None
    return sorted(p.name for p in ranks.iterdir()) if ranks and ranks.is_dir() else []


def _fail_a_node(fault_cluster: FaultCluster, start_sflow, how) -> tuple[int, dict, str, str]:
    mark = fault_cluster.work_dir / f"mark-{uuid.uuid4().hex[:8]}"
    run = start_sflow(WORKFLOW, env=fault_cluster.env(MARK=str(mark)))
    node = str(wait_for("rank 1 to start", lambda: mark.exists() and mark.read_text().strip()))
    wait_for("rank 0 to record its exit 0", lambda: _rank_records(run.run_dir()) == ["0"])
    how(node)
    code = run.wait(timeout=240)
    return code, run.summary(), run.stderr, node


def test_a_node_set_down_under_a_step_fails_the_task(fault_cluster, start_sflow) -> None:
    code, summary, stderr, node = _fail_a_node(fault_cluster, start_sflow, fault_cluster.set_node_down)
    task = summary["tasks"]["two_nodes"]
    assert code == 1, stderr
    assert not summary["ok"] and task["state"] == "failed" and task["attempts"] == 1
    assert task["slurm_state"] == "NODE_FAIL"
    assert f"node failure on {node}" in task["reason"]
    assert task["reason"].startswith("exit code 0 but the step did not complete on every node")
    job = summary["backends"]["cluster"]["job_id"]
    assert summary["stop_reason"].startswith(
        f"Slurm allocation {job} (backend 'cluster') ended: a node failed"
    )
    assert "reason NodeDown" in summary["stop_reason"]  # (the node itself is back by now: ReturnToService)
    assert "workflow failed" in stderr and f"node failure on {node}" in stderr
    assert not fault_cluster.live_jobs()


def test_a_node_whose_daemons_and_tasks_are_killed_fails_the_task(fault_cluster, start_sflow) -> None:
    # slurmd, slurmstepd and the rank itself die at once: nothing on that node reports anything
    code, summary, stderr, node = _fail_a_node(fault_cluster, start_sflow, fault_cluster.kill_node)
    task = summary["tasks"]["two_nodes"]
    assert code == 1, stderr
    assert task["state"] == "failed" and task["attempts"] == 1
    assert f"node failure on {node}" in task["reason"]
    assert "rank 1 of 2 never recorded an end" in task["reason"]
    assert task["slurm_state"] == "NODE_FAIL"
    assert "workflow failed" in stderr
