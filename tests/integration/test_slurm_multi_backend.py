"""Several backends in one workflow: a local task prepares data that Slurm steps then use."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

WORKFLOW = """\
version: "0.1"
backends:
  - name: laptop
    type: local
  - name: cluster
    type: slurm
    default: true
    partition: "{partition}"
    time: "00:05:00"
    nodes: 2
    job_name: "{job_name}"
workflow:
  name: mixed
  tasks:
    - name: prepare
      backend: laptop
      script:
        - echo "payload-from-$(hostname)" > {shared}/data.txt
    - name: use
      depends_on: [prepare]
      resources: {{nodes: {{count: 2}}}}
      operator: {{name: srun, ntasks_per_node: 1}}
      script:
        - echo "$(hostname) read $(cat {shared}/data.txt) in $SLURM_JOB_ID"
"""


def test_local_task_feeds_slurm_steps(slurm_cluster: Any, squeue_ours: Any) -> None:
    work = Path(slurm_cluster.work_dir) / f"multi-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    job_name = f"sflow-it-multi-{uuid.uuid4().hex[:6]}"
    wf = work / "wf.yaml"
    wf.write_text(WORKFLOW.format(partition=slurm_cluster.partition, job_name=job_name, shared=work))
    proc = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--output-dir", str(work / "out")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (summary_path,) = (work / "out").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["tasks"]["prepare"]["backend"] == "laptop"
    assert summary["tasks"]["use"]["backend"] == "cluster"
    assert summary["backends"]["laptop"]["job_id"] is None
    job_id = summary["backends"]["cluster"]["job_id"]
    lines = Path(summary["tasks"]["use"]["log"]).read_text().split("\n")
    hosts = sorted(line.split()[0] for line in lines if " read " in line)
    assert len(set(hosts)) == 2 and all(h.startswith("node") for h in hosts), lines
    assert all(
        "read payload-from-" in line and line.endswith(f"in {job_id}") for line in lines if " read " in line
    )
    assert summary["tasks"]["use"]["start"] >= summary["tasks"]["prepare"]["end"]
    assert not squeue_ours(job_name), "the allocation was not released"
