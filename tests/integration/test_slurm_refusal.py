"""Slurm refusing the allocation is a failed run with Slurm's reason: one line, a summary, no traceback."""

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
  - name: cluster
    type: slurm
    partition: no_such_partition
    time: "00:05:00"
    job_name: "{job_name}"
workflow:
  name: refused
  tasks:
    - name: t
      script: ["true"]
"""


def test_refused_allocation_fails_the_run_cleanly(slurm_cluster: Any, squeue_ours: Any) -> None:
    work = Path(slurm_cluster.work_dir) / f"refused-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    job_name = f"sflow-it-refused-{uuid.uuid4().hex[:6]}"
    (work / "wf.yaml").write_text(WORKFLOW.format(job_name=job_name))
    proc = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", "wf.yaml", "--output-dir", "out"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "invalid partition" in proc.stderr.lower()
    (summary_path,) = (work / "out").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["ok"] is False and "invalid partition" in summary["stop_reason"].lower()
    assert summary["tasks"]["t"]["state"] == "cancelled"
    assert not squeue_ours(job_name)
