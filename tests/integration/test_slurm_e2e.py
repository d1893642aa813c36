"""End to end through the `sflow` command on the real test cluster: salloc + srun, Ctrl-C, reuse inside
sbatch, `sflow batch --submit`, and how fast a dependent step follows its dependency."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

PREFIX = f"sflow-it-e2e-{os.getpid()}-"  # this process's jobs only: other runs share the cluster
pytestmark = pytest.mark.usefixtures("no_leaked_jobs")
SlurmCluster = Any
WORKFLOW = """\
version: "0.1"
backends:
- name: slurm_cluster
  type: slurm
  default: true
  account: "sflow-it"
  partition: "{partition}"
  time: "00:10:00"
  nodes: {nodes}
  job_name: "{job_name}"
workflow:
  name: wf
  tasks:
{tasks}
"""


def _name(tag: str) -> str:
    return f"{PREFIX}{tag}-{uuid.uuid4().hex[:6]}"


def _workflow(cluster: SlurmCluster, tmp: Path, job_name: str, tasks: str, nodes: int = 1) -> Path:
    path = tmp / "wf.yaml"
    path.write_text(WORKFLOW.format(partition=cluster.partition, nodes=nodes, job_name=job_name, tasks=tasks))
    return path


@pytest.fixture
def tmp(slurm_cluster: SlurmCluster) -> Path:
    return slurm_cluster.scratch("e2e")


def sflow(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def summary(out: Path) -> dict[str, Any]:
    (path,) = out.glob("*/summary.json")
    return json.loads(path.read_text())


def test_seed_example_runs_through_salloc_and_srun(
    slurm_cluster: SlurmCluster, tmp: Path, squeue_ours: Any
) -> None:
    name = _name("seed")
    tasks = "  - name: slurm_task\n    script:\n      - echo hello from $(hostname) step $SLURM_STEP_ID\n"
    wf = _workflow(slurm_cluster, tmp, name, tasks)
    proc = sflow("run", "-f", str(wf), "--output-dir", "out", cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = summary(tmp / "out")
    backend = result["backends"]["slurm_cluster"]
    assert backend["reused"] is False and backend["job_id"]
    task = result["tasks"]["slurm_task"]
    assert task["slurm_step_id"].startswith(backend["job_id"] + ".")
    log = Path(task["log"]).read_text()
    assert re.search(r"hello from node\d step \d+", log), log
    assert squeue_ours(name) == []  # the allocation was cancelled at the end


def _wait_for_step(job_name: str, task: str, timeout: float = 60) -> str:
    """The job id once a step named `task` runs in the job called `job_name`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "--noheader", "--steps", "--format=%i|%j"], capture_output=True, text=True
        ).stdout
        jobs = subprocess.run(
            ["squeue", "--noheader", "--name", job_name, "--format=%i"], capture_output=True, text=True
        ).stdout.split()
        for line in out.split():
            step, _, name = line.partition("|")
            if name == task and step.split(".")[0] in jobs:
                return step.split(".")[0]
        time.sleep(0.1)
    raise AssertionError(f"no step {task} in a job {job_name} after {timeout}s")


def test_ctrl_c_leaves_no_job_and_no_step(slurm_cluster: SlurmCluster, tmp: Path, squeue_ours: Any) -> None:
    name = _name("sigint")
    tasks = "  - name: sleeper\n    script:\n      - sleep 300\n"
    wf = _workflow(slurm_cluster, tmp, name, tasks)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sflow", "run", "-f", str(wf), "--output-dir", "out"],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job = _wait_for_step(name, "sleeper")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert squeue_ours(name) == []
    steps = subprocess.run(["squeue", "--noheader", "--steps", "--jobs", job], capture_output=True, text=True)
    assert steps.stdout.strip() == ""
    assert slurm_cluster.job_field(job, "JobState") == "CANCELLED"


def test_sflow_run_inside_sbatch_reuses_the_allocation(
    slurm_cluster: SlurmCluster, tmp: Path, squeue_ours: Any
) -> None:
    name = _name("wrap")
    tasks = "  - name: t\n    script:\n      - echo in $SLURM_JOB_ID\n"
    wf = _workflow(slurm_cluster, tmp, f"{name}-inner", tasks)
    wrap = f"cd {tmp} && {sys.executable} -m sflow run --file {wf} --output-dir out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "-J", name, "-t", "5", "-o", str(tmp / "job.out"), "--wrap", wrap],
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip().split(";")[0]
    assert slurm_cluster.wait_final(job) == "COMPLETED", (tmp / "job.out").read_text()
    backend = summary(tmp / "out")["backends"]["slurm_cluster"]
    assert backend == {"nodes": backend["nodes"], "job_id": job, "reused": True}
    inner = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--name", f"{name}-inner", "--format=%i"],
        capture_output=True,
        text=True,
    )
    assert inner.stdout.strip() == "", "a second allocation was created inside the batch job"


def _batch(files: list[str], job_name: str, cwd: Path) -> str:
    """`sflow batch --submit` through the CLI; returns the job id it printed."""
    args = ["batch", *files, "-J", job_name, "--time", "5", "--submit", "--output-dir", "out"]
    proc = sflow(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"Submitted batch job (\d+)", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


@pytest.mark.parametrize(
    ("script", "state", "code"), [("exit 0", "COMPLETED", "0:0"), ("exit 4", "FAILED", "1:0")]
)
def test_sflow_batch_submit_exit_code_is_the_workflows(
    slurm_cluster: SlurmCluster, tmp: Path, script: str, state: str, code: str, capfd: Any
) -> None:
    name = _name("batch")
    tasks = f"  - name: t\n    script:\n      - {script}\n"
    wf = _workflow(slurm_cluster, tmp, f"{name}-yaml", tasks)
    job = _batch([str(wf)], name, tmp)
    assert slurm_cluster.wait_final(job) == state
    assert slurm_cluster.job_field(job, "ExitCode") == code  # sflow run: 0 ok, 1 a task failed
    assert slurm_cluster.job_field(job, "JobName") == name
    outputs = list((tmp / "out").glob("sflow-*.out"))
    assert [p.name for p in outputs] == [f"sflow-{job}.out"]
    assert summary(tmp / "out")["backends"]["slurm_cluster"]["reused"] is True


def test_sflow_batch_set_values_stay_off_command_lines_and_expressions_render(
    slurm_cluster: SlurmCluster, tmp: Path
) -> None:
    """`--set` values reach the job through a 0600 file, not argv; `${{ }}` backend fields render."""
    name = _name("secret")
    secret = "tok-" + uuid.uuid4().hex
    wf = tmp / "wf.yaml"
    wf.write_text(
        'version: "0.1"\n'
        "variables:\n"
        "  TOKEN: {value: none}\n"
        "  PARTITION: {value: no-such-partition}\n"
        "backends:\n"
        "  - name: slurm_cluster\n"
        "    type: slurm\n"
        "    default: true\n"
        "    partition: ${{ variables.PARTITION }}\n"
        '    time: "00:05:00"\n'
        "    nodes: 1\n"
        "workflow:\n"
        "  name: secretive\n"
        "  tasks:\n"
        "    - name: check\n"
        "      script:\n"
        f"        - printf '%s' \"$TOKEN\" > {tmp}/got.txt\n"
        f"        - printf '%s\\n' \"$TOKEN\" > {tmp}/pattern.txt\n"  # grep reads it: not in its argv
        f"        - grep -F -l -a -f {tmp}/pattern.txt /proc/[0-9]*/cmdline > {tmp}/leaks.txt || true\n"
        f"        - printf 'sflow.cli.batch_job\\n' > {tmp}/ours.txt\n"
        f"        - grep -F -l -a -f {tmp}/ours.txt /proc/[0-9]*/cmdline > {tmp}/seen.txt || true\n"
    )
    args = ["batch", str(wf), "-J", name, "--submit", "--output-dir", "out", "-o", str(tmp / "job.sbatch")]
    args += ["--set", f"TOKEN={secret}", "--set", f"PARTITION={slurm_cluster.partition}"]
    proc = sflow(*args, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"Submitted batch job (\d+)", proc.stdout)
    assert match, proc.stdout
    job = match.group(1)
    assert slurm_cluster.wait_final(job) == "COMPLETED", (tmp / "out" / f"sflow-{job}.out").read_text()
    assert slurm_cluster.job_field(job, "Partition") == slurm_cluster.partition
    assert (tmp / "got.txt").read_text() == secret
    assert (tmp / "seen.txt").read_text().strip(), "the job's sflow process was not visible"
    assert (tmp / "leaks.txt").read_text() == "", "a command line carried the --set value"
    script = tmp / "job.sbatch"
    assert secret not in script.read_text() and script.stat().st_mode & 0o777 == 0o700
    assert (tmp / "job.sbatch.sets").stat().st_mode & 0o777 == 0o600


def test_dependent_step_starts_right_after_its_dependency(slurm_cluster: SlurmCluster, tmp: Path) -> None:
    name = _name("chain")
    tasks = (
        "  - name: a\n    script:\n      - sleep 0.2\n      - date +%s.%N > a.end\n"
        "  - name: b\n    depends_on: [a]\n    script:\n      - date +%s.%N > b.start\n"
    )
    wf = _workflow(slurm_cluster, tmp, name, tasks)
    proc = sflow("run", "-f", str(wf), "--output-dir", "out", "--workspace-dir", str(tmp), cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gap = float((tmp / "b.start").read_text()) - float((tmp / "a.end").read_text())
    print(f"dependent step started {gap:.3f}s after its dependency ended")
    assert 0 < gap < 0.5, f"b started {gap:.3f}s after a ended"


def test_ctrl_c_while_sbatch_runs_cancels_the_job_it_created(
    slurm_cluster: SlurmCluster, tmp: Path, squeue_ours: Any, wait_until: Any
) -> None:
    """sbatch created the job but its answer never came: the job is found by its tag and cancelled."""
    name = _name("intr")
    wf = _workflow(slurm_cluster, tmp, f"{name}-yaml", "  - name: t\n    script:\n      - sleep 60\n")
    slow = tmp / "bin"
    slow.mkdir()
    (slow / "sbatch").write_text(f'#!/bin/bash\n{shutil.which("sbatch")} "$@" > /dev/null\nexec sleep 30\n')
    (slow / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{slow}:{os.environ['PATH']}"}
    args = ["batch", str(wf), "-J", name, "--time", "5", "--submit", "--output-dir", "out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sflow", *args],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not squeue_ours(name) and time.monotonic() < deadline:  # the job exists; sbatch hangs
        time.sleep(0.1)
    assert squeue_ours(name), "the job was never created"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    # A cancelled job stays in squeue for a moment while it completes; left running, its task
    # (sleep 60) would keep it there three times as long as this waits.
    wait_until(lambda: not squeue_ours(name), f"the job of {name} to be cancelled", limit=20)
    assert re.search(
        r"interrupted while submitting; job \d+, which sbatch had already created, was cancelled", err
    ), err
