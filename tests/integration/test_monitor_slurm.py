"""Monitors on the real test cluster: a sampler on every node of a task, stopped with its owner."""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from sflow.workflow.monitors import monitor_dir

PREFIX = f"sflow-it-monitor-{os.getpid()}-"
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")

WORKFLOW = """\
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    partition: "{partition}"
    time: "00:10:00"
    nodes: 2
    job_name: "{job_name}"
workflow:
  name: watched
  monitor:
    interval: 300
    scopes: {{memory: {{}}}}
  tasks:
    - name: spread
      resources: {{nodes: {{count: 2}}}}
      script:
        - sleep 3
      monitor:
        interval: 200
        scopes: {{cpu: {{}}, memory: {{}}}}
"""


def samplers_of(run_dir: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sflow.monitor.sampler" in cmdline and str(run_dir).encode() in cmdline:
            found.append(int(pid))
    return found


def test_a_two_node_task_is_sampled_on_both_nodes(slurm_cluster: Any, squeue_ours: Any) -> None:
    job_name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    workflow = WORKFLOW.format(partition=slurm_cluster.partition, job_name=job_name)
    run = slurm_cluster.sflow_run(workflow, label="monitor", timeout=300)
    assert run.done.returncode == 0, run.done.stdout + run.done.stderr
    run_dir = run.run_dir
    summary_path = run_dir / "summary.json"
    task = json.loads(summary_path.read_text())["tasks"]["spread"]
    nodes = task["nodes"]
    assert len(nodes) == 2

    task_dir = monitor_dir(run_dir, "spread")
    assert sorted(p.stem for p in task_dir.glob("*.csv")) == sorted(nodes), (
        task_dir / "sampler.log"
    ).read_text()
    for node in nodes:
        header, *rows = list(csv.reader((task_dir / f"{node}.csv").open()))
        assert header[:2] == ["time", "cpu.util_percent"] and "memory.used_mib" in header
        assert len(rows) >= 2, f"{node}: {rows}"
        assert float(rows[-1][0]) >= task["end"] - 0.5  # sampled until the task ended
    log = (task_dir / "sampler.log").read_text()
    assert "Killed" not in log, log  # TERM to the step: each sampler ends on its own
    whole = monitor_dir(run_dir)
    assert sorted(p.stem for p in whole.glob("*.csv")) == sorted(nodes)
    assert samplers_of(run_dir) == []
    assert squeue_ours(job_name) == []
