"""Container steps on the real test cluster, through the cluster's own pyxis SPANK plugin.

pyxis is not installed here: `scripts/dev-slurm` builds a plugin (scripts/spank/pyxis_lab.c) that
registers pyxis's option names, so the real srun accepts them, runs the step in the image with runc
(on an unpacked root filesystem of `sflow-test:local`), and hands each option the step received to
its tasks as `SFLOW_PYXIS_*`. See docs/slurm-lab.md for what this proves and what it does not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


IMAGE_MARKER = "/etc/sflow-test-image"  # a file only the test image has


def sflow(tmp: Path, text: str) -> list[str]:
    wf = tmp / "wf.yaml"
    wf.write_text(text)
    return [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--output-dir", "out", "--no-tui"]


def run(tmp: Path, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sflow(tmp, text), cwd=tmp, capture_output=True, text=True, timeout=180)


def log(tmp: Path, task: str) -> str:
    run_dir = next(p for p in (tmp / "out").iterdir() if p.is_dir())
    return (run_dir / task / f"{task}.log").read_text()


def backend(cluster: SlurmCluster, job_name: str = "") -> str:
    return f"""\
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    partition: "{cluster.partition}"
    time: "00:05:00"
    nodes: 1
    job_name: "{job_name or PREFIX + uuid.uuid4().hex[:6]}"
"""


def containers_of(cluster: SlurmCluster, job: str) -> list[str]:
    """The job's containers that runc knows (the plugin names them sflow-JOB.STEP-NODE)."""
    out = subprocess.run(
        ["runc", "--root", f"{cluster.lab_dir}/containers/runc", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [c["id"] for c in json.loads(out) or () if c["id"].startswith(f"sflow-{job}.")]


def overlays_of(cluster: SlurmCluster, job: str) -> list[str]:
    """The job's container root filesystems still mounted."""
    where = f"{cluster.lab_dir}/containers/job-{job}/"
    return [line for line in Path("/proc/mounts").read_text().splitlines() if where in line]


def test_an_image_task_runs_in_the_image_with_its_mounts(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    data = tmp / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host\n")
    assert not Path(IMAGE_MARKER).exists()  # the host lacks it: seeing it means running in the image
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
        - 'echo "image: $(cat {IMAGE_MARKER})"'
        - 'echo "input: $(cat {data}/input.txt)"'
        - 'touch /opt/sflow-probe 2>/dev/null && echo "opt: writable" || echo "opt: read-only"'
        - 'echo "made inside" > "$SFLOW_TASK_OUTPUT_DIR/result.txt"'
        - 'echo "$SFLOW_PYXIS_OPTIONS"'
        - 'echo "$SFLOW_TASK_OUTPUT_DIR"'
""",
    )
    assert done.returncode == 0, done.stderr
    lines = log(tmp, "inside").splitlines()
    assert "image: sflow-test:local" in lines
    assert "input: from the host" in lines
    assert "opt: read-only" in lines
    options, task_dir = lines[-2:]
    assert (Path(task_dir) / "result.txt").read_text() == "made inside\n"
    flags = options.split(" ")
    assert "--container-image=sflow-test:local" in flags
    assert "--container-writable" in flags and "--no-container-mount-home" in flags
    mounts = next(f for f in flags if f.startswith("--container-mounts=")).partition("=")[2].split(",")
    assert f"{task_dir}:{task_dir}:rw" in mounts
    assert f"{data}:{data}:rw" in mounts
    assert mounts[0] == "/opt:/opt:ro"  # the operator's own first


def test_a_writable_named_container_keeps_files_between_tasks(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    """The first task imports the image under a name; the next attaches by that name alone and
    finds what the first wrote into the container's own filesystem (not a mount)."""
    assert not Path("/sflow-kept").exists()
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
    - name: first
      operator: load
      script: ['echo "$SFLOW_PYXIS_OPTIONS"', 'echo kept-by-first > /sflow-kept']
    - name: second
      operator: reuse
      depends_on: [first]
      script: ['echo "$SFLOW_PYXIS_OPTIONS"', 'cat /sflow-kept']
""",
    )
    assert done.returncode == 0, done.stderr
    first, second = (log(tmp, t).split() for t in ("first", "second"))
    assert "--container-name=shared" in first and "--container-image=sflow-test:local" in first
    assert "--container-name=shared" in second
    assert not [f for f in second if f.startswith("--container-image")]
    assert "kept-by-first" in second
    assert not Path("/sflow-kept").exists()


def test_an_image_missing_from_the_cluster_fails_the_task_with_the_reason(
    slurm_cluster: SlurmCluster, tmp: Path
) -> None:
    done = run(
        tmp,
        backend(slurm_cluster)
        + """\
operators:
  - {name: box, type: srun, container_image: "nvcr.io#nvidia/pytorch:24.01-py3"}
workflow:
  name: pyxis
  tasks:
    - {name: inside, operator: box, script: ['echo never']}
""",
    )
    assert done.returncode != 0
    assert "image 'nvcr.io#nvidia/pytorch:24.01-py3' is not on this cluster" in done.stdout + done.stderr
    assert "never" not in log(tmp, "inside")


def _wait_for_container(
    cluster: SlurmCluster, job_name: str, proc: subprocess.Popen[str], timeout: float = 90
) -> str:
    """The job id once a container of the job named `job_name` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        jobs = subprocess.run(
            ["squeue", "--noheader", "--name", job_name, "--format=%i"], capture_output=True, text=True
        ).stdout.split()
        for job in jobs:
            if containers_of(cluster, job):
                return job
        time.sleep(0.1)
    raise AssertionError(f"no container of a job {job_name} (sflow exit code {proc.poll()})")


def test_ctrl_c_leaves_no_step_and_no_container(
    slurm_cluster: SlurmCluster, tmp: Path, squeue_ours: Any
) -> None:
    name = f"{PREFIX}sigint-{uuid.uuid4().hex[:6]}"
    argv = sflow(
        tmp,
        backend(slurm_cluster, name)
        + """\
operators:
  - {name: box, type: srun, container_name: kept, extra_args: ["--container-image=sflow-test:local"]}
workflow:
  name: pyxis
  tasks:
    - {name: sleeper, operator: box, script: ['sleep 300']}
""",
    )
    proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = _wait_for_container(slurm_cluster, name, proc)
        assert overlays_of(slurm_cluster, job)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert squeue_ours(name) == []
    steps = subprocess.run(["squeue", "--noheader", "--steps", "--jobs", job], capture_output=True, text=True)
    assert steps.stdout.strip() == ""
    assert containers_of(slurm_cluster, job) == []
    assert overlays_of(slurm_cluster, job) == []
