"""`sflow run` flags that change a Slurm allocation, on the real test cluster: the node pool
(`include_nodes`, `--include-nodes`, `--exclude-nodes`) and extra salloc flags (`-e`,
`--extra-salloc-args`, the command line's winning over the file and each other)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PREFIX = f"sflow-it-flags-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")

WORKFLOW = """\
version: "0.1"
backends:
- name: cluster
  type: slurm
  partition: "{partition}"
  time: "00:10:00"
  nodes: 1
  job_name: "{job_name}"
  INCLUDE
  extra_args: ["--comment=from-the-file"]
workflow:
  name: flags
  tasks:
  - name: where
    script:
    - echo "host=$(hostname)"
    - scontrol show job -o "$SFLOW_BACKEND_JOB_ID" | grep -o 'Comment=[^ ]*'
"""


def run(cluster: Any, tmp: Path, include: str, *flags: str) -> tuple[str, str]:
    """The node the task ran on and the job's comment, from the task's own log."""
    text = WORKFLOW.format(partition=cluster.partition, job_name=f"{PREFIX}{uuid.uuid4().hex[:6]}")
    path = tmp / "wf.yaml"
    path.write_text(text.replace("INCLUDE", include))
    done = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(path), "--no-tui", *flags],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    (summary,) = (tmp / "sflow_output").glob("*/summary.json")
    log = Path(json.loads(summary.read_text())["tasks"]["where"]["log"]).read_text()
    host = next(line.split("=", 1)[1] for line in log.splitlines() if line.startswith("host="))
    comment = next(line.split("=", 1)[1] for line in log.splitlines() if line.startswith("Comment="))
    return host, comment


@pytest.fixture
def tmp(slurm_cluster: Any) -> Path:
    path = Path(slurm_cluster.work_dir) / f"flags-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def test_include_nodes_of_the_file_choose_the_node(slurm_cluster: Any, tmp: Path) -> None:
    host, comment = run(slurm_cluster, tmp, "include_nodes: [node3]")
    assert host == "node3"
    assert comment == "from-the-file"


def test_exclude_nodes_and_extra_args_from_the_command_line(slurm_cluster: Any, tmp: Path) -> None:
    host, comment = run(
        slurm_cluster,
        tmp,
        "",
        "--exclude-nodes",
        "node1,node2",
        "--exclude-nodes",
        "node3",
        "-e",
        "--comment=generic",
    )
    assert host == "node4"
    assert comment == "generic"  # one --comment: the command line's


def test_extra_salloc_args_win_over_extra_args(slurm_cluster: Any, tmp: Path) -> None:
    host, comment = run(
        slurm_cluster,
        tmp,
        "exclude_nodes: [node1, node3, node4]",
        "-e",
        "--comment=generic",
        "--extra-salloc-args=--comment=salloc-only",
    )
    assert host == "node2"
    assert comment == "salloc-only"
