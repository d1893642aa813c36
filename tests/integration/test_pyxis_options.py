"""pyxis's srun options on the real test cluster, through the cluster's own SPANK plugin.

pyxis is not installed here: `scripts/dev-slurm` builds a plugin (scripts/spank/pyxis_options.c)
that registers pyxis's option names, so the real srun accepts them, and hands each option a step
received to its tasks as `SFLOW_PYXIS_*`. These tests prove what reaches the step (image, name,
mounts, flags); they do not prove an image ran.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PREFIX = "sflow-it-pyxis-"
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")
SlurmCluster = Any


@pytest.fixture
def tmp(slurm_cluster: SlurmCluster) -> Path:
    path = Path(slurm_cluster.work_dir) / f"pyxis-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def run(tmp: Path, text: str) -> subprocess.CompletedProcess[str]:
    wf = tmp / "wf.yaml"
    wf.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--output-dir", "out", "--no-tui"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
    )


def log(tmp: Path, task: str) -> str:
    run_dir = next(p for p in (tmp / "out").iterdir() if p.is_dir())
    return (run_dir / task / f"{task}.log").read_text()


def backend(cluster: SlurmCluster) -> str:
    return f"""\
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    partition: "{cluster.partition}"
    time: "00:05:00"
    nodes: 1
    job_name: "{PREFIX}{uuid.uuid4().hex[:6]}"
"""


def test_an_image_task_gets_its_mounts_and_flags_in_the_step(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    data = tmp / "data"
    data.mkdir()
    done = run(
        tmp,
        backend(slurm_cluster)
        + f"""\
artifacts:
  - {{name: DATA, uri: "fs://{data}"}}
operators:
  - {{name: box, type: srun, container_image: "sflow-test:local", container_mounts: ["/opt:/opt:ro"]}}
workflow:
  name: pyxis
  tasks:
    - name: inside
      operator: box
      script:
        - 'echo "$SFLOW_PYXIS_OPTIONS"'
        - 'echo "$SFLOW_TASK_OUTPUT_DIR"'
""",
    )
    assert done.returncode == 0, done.stderr
    options, task_dir = log(tmp, "inside").splitlines()[-2:]
    flags = options.split(" ")
    assert "--container-image=sflow-test:local" in flags
    assert "--container-writable" in flags and "--no-container-mount-home" in flags
    mounts = next(f for f in flags if f.startswith("--container-mounts=")).partition("=")[2].split(",")
    assert f"{task_dir}:{task_dir}:rw" in mounts
    assert f"{data}:{data}:rw" in mounts
    assert mounts[0] == "/opt:/opt:ro"  # the operator's own first


def test_tasks_sharing_a_container_name_pass_it_on(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    """The first task imports the image under a name; the next attaches to it by that name alone."""
    done = run(
        tmp,
        backend(slurm_cluster)
        + """\
operators:
  - {name: load, type: srun, container_name: shared, extra_args: ["--container-image=sflow-test:local"]}
  - {name: reuse, type: srun, container_name: shared}
workflow:
  name: pyxis
  tasks:
    - {name: first, operator: load, script: ['echo "$SFLOW_PYXIS_OPTIONS"']}
    - {name: second, operator: reuse, depends_on: [first], script: ['echo "$SFLOW_PYXIS_OPTIONS"']}
""",
    )
    assert done.returncode == 0, done.stderr
    first, second = (log(tmp, t).split() for t in ("first", "second"))
    assert "--container-name=shared" in first and "--container-image=sflow-test:local" in first
    assert "--container-name=shared" in second
    assert not [f for f in second if f.startswith("--container-image")]
