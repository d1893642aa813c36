"""`sflow batch --bulk-input CSV --submit` and `--bulk-submit` on the real test cluster: one job per
row (per file), each running its own row's values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PREFIX = f"sflow-it-bulk-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")
SlurmCluster = Any

BACKEND = """\
version: "0.1"
variables:
  NODES: {{value: 1, type: integer}}
  JOB: {{value: unnamed}}
backends:
- name: cluster
  type: slurm
  default: true
  partition: "{partition}"
  time: "00:05:00"
  nodes: ${{{{ variables.NODES }}}}
  job_name: "{prefix}${{{{ variables.JOB }}}}"
"""

WORKFLOW = """\
version: "0.1"
workflow:
  name: bulk
  variables:
    WORD: {value: none}
  tasks:
    - name: say
      resources: {nodes: {count: "${{ variables.NODES }}"}}
      script:
        - echo "$WORD $SLURM_JOB_ID $SLURM_JOB_NUM_NODES $(hostname)" > "$SFLOW_WORKSPACE_DIR/$JOB.txt"
"""

CSV = """\
sflow_config_file,JOB,WORD,NODES
backend.yaml workflow.yaml,one,alpha,1
backend.yaml workflow.yaml,two,beta,2
backend.yaml workflow.yaml,three,gamma,
"""


@pytest.fixture
def tmp(slurm_cluster: SlurmCluster) -> Path:
    return slurm_cluster.scratch("bulk")


def sflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def submitted_jobs(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return re.findall(r"Submitted batch job (\d+)", proc.stdout)


def test_bulk_input_submits_one_job_per_row_each_with_its_values(
    slurm_cluster: SlurmCluster, tmp: Path
) -> None:
    (tmp / "backend.yaml").write_text(BACKEND.format(partition=slurm_cluster.partition, prefix=PREFIX))
    (tmp / "workflow.yaml").write_text(WORKFLOW)
    (tmp / "jobs.csv").write_text(CSV)
    jobs = submitted_jobs(
        sflow("batch", "--bulk-input", "jobs.csv", "--submit", "--output-dir", "out", cwd=tmp)
    )
    assert len(jobs) == 3 and len(set(jobs)) == 3
    for job in jobs:
        assert slurm_cluster.wait_final(job) == "COMPLETED", next(
            (tmp / "out").glob(f"sflow-{job}.out")
        ).read_text()
    names = [slurm_cluster.job_field(job, "JobName") for job in jobs]
    assert names == [f"{PREFIX}one", f"{PREFIX}two", f"{PREFIX}three"]
    assert [slurm_cluster.job_field(job, "NumNodes") for job in jobs] == ["1", "2", "1"]
    seen = {row: tuple((tmp / f"{row}.txt").read_text().split()[:3]) for row in ("one", "two", "three")}
    assert seen == {
        "one": ("alpha", jobs[0], "1"),
        "two": ("beta", jobs[1], "2"),
        "three": ("gamma", jobs[2], "1"),  # an empty NODES cell keeps the workflow's 1
    }


def test_bulk_submit_submits_one_job_per_workflow_file(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    recipes = tmp / "recipes"
    recipes.mkdir()
    backend = BACKEND.format(partition=slurm_cluster.partition, prefix=PREFIX)
    for job, word in (("red", "r"), ("green", "g"), ("blue", "b")):
        text = backend.replace("{value: unnamed}", f"{{value: {job}}}") + WORKFLOW.split("\n", 1)[1]
        (recipes / f"{job}.yaml").write_text(text.replace("{value: none}", f"{{value: {word}}}"))
    jobs = submitted_jobs(
        sflow("batch", "--bulk-submit", "recipes", "--submit", "--output-dir", "out", cwd=tmp)
    )
    assert len(jobs) == 3
    for job in jobs:
        assert slurm_cluster.wait_final(job) == "COMPLETED", next(
            (tmp / "out").glob(f"sflow-{job}.out")
        ).read_text()
    got = {name: (tmp / f"{name}.txt").read_text().split()[:2] for name in ("blue", "green", "red")}
    assert got == {"blue": ["b", jobs[0]], "green": ["g", jobs[1]], "red": ["r", jobs[2]]}
