"""sflow SIGKILLed while sbatch (a Python flow) or salloc (a YAML run) runs: the job exists, its
id reached no file of the run, and `sflow cancel RUN` still finds it by its tag and cancels it,
and nothing else.

The window is made to last: `sbatch` or `salloc` on sflow's PATH is the real command, whose
answer waits for the test's word before sflow sees it. The job itself is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from fault_helpers import FaultCluster, wait_for

from sflow.slurm.journal import ALLOCATION, JOB, SUBMITTING, read_journal

FLOW = """
import sys
import time

import sflow

prefix, shared, out = sys.argv[1:4]
sflow.config(
    environments={
        "slurm": {
            "executor": "slurm",
            "executor_config": {"time": "0:10:00", "shared_dir": shared, "job_name_prefix": prefix},
        }
    }
)
with sflow.flow("killed-submitting", environment="slurm", output_dir=out) as f:

    @f.task
    def sleepy():
        time.sleep(600)
"""

# the real sbatch creates the job; its answer waits for the test's word
HELD_SBATCH = """#!/bin/sh
out=$("$REAL_SBATCH" "$@"); code=$?
printf '%s\\n' "$out" > "$GATE.tmp" && mv "$GATE.tmp" "$GATE.submitted"
while [ ! -e "$GATE.release" ]; do sleep 0.1; done
printf '%s\\n' "$out"
exit $code
"""


# the real salloc asks for the job (reading sflow's pipe); what it says waits for the test's word
HELD_SALLOC = """#!/bin/sh
exec 3<&0
"$REAL_SALLOC" "$@" <&3 2>"$GATE.said" &
until grep -q "job allocation" "$GATE.said" 2>/dev/null; do sleep 0.1; done
touch "$GATE.submitted"
until [ -e "$GATE.release" ]; do sleep 0.1; done
cat "$GATE.said" >&2
wait $!
"""

WORKFLOW = """
version: "0.1"
backends:
  - name: cluster
    type: slurm
    default: true
    nodes: 1
    time: "00:10:00"
    job_name: {name}
workflow:
  name: killed-allocating
  tasks:
    - name: never
      script: ["true"]
"""


def _held(work: Path, command: str, text: str) -> Path:
    """`command` in `work/bin`, the real one's answer held until the test's word."""
    held = work / "bin" / command
    held.parent.mkdir(parents=True, exist_ok=True)
    held.write_text(text)
    held.chmod(0o755)
    return held


def _sflow(cluster: FaultCluster, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sflow", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=cluster.env())


def _running(path: Path) -> list[int]:
    """Processes whose command line names `path` (the held sbatch, orphaned by the kill)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if str(path).encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            pass
    return found


def _alive(cluster: FaultCluster, job: str) -> bool:
    return cluster.job(job).get("JobState") in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")


def test_cancel_finds_the_job_of_a_flow_killed_while_sbatch_ran(fault_cluster: FaultCluster) -> None:
    prefix = f"sflow-fault-submit-{uuid.uuid4().hex[:6]}"
    work = fault_cluster.work_dir / prefix
    (work / "shared").mkdir(parents=True)
    (work / "flow.py").write_text(FLOW)
    held = _held(work, "sbatch", HELD_SBATCH)
    gate = work / "gate"
    real = shutil.which("sbatch")
    assert real is not None
    env = fault_cluster.env(PATH=f"{work / 'bin'}:{os.environ['PATH']}", REAL_SBATCH=real, GATE=str(gate))
    argv = [sys.executable, str(work / "flow.py"), prefix, str(work / "shared"), str(work / "out")]
    with open(work / "flow.stderr", "w") as err:
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=err, stderr=err)
    try:
        submitted = Path(f"{gate}.submitted")
        wait_for("sbatch to create the job", submitted.exists, timeout=180)
        job = submitted.read_text().strip().split(";")[0]
        (run_dir,) = [p for p in (work / "out").iterdir() if (p / "run.json").is_file()]
        entries = read_journal(run_dir)
        (submitting,) = [e for e in entries if e.kind == SUBMITTING]
        assert not [e for e in entries if e.kind == JOB]  # the id reached no file of the run
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        Path(f"{gate}.release").touch()
    wait_for("the held sbatch to exit", lambda: not _running(held), timeout=60)
    assert _alive(fault_cluster, job)  # left behind by the kill
    assert fault_cluster.job(job)["Comment"] == submitting.tag

    name = dict(submitting.info)["name"]
    tag = str(submitting.tag)
    other_run = fault_cluster.slurm(
        "sbatch", "--parsable", "--hold", "-J", name, f"--comment=sflow:another-run:{tag[-6:]}",
        "-o", "/dev/null", "--wrap", "sleep 600",
    ).strip()  # fmt: skip
    other_user = fault_cluster.slurm(
        "sbatch", "--parsable", "--hold", "--uid=nobody", "-J", name, f"--comment={tag}",
        "-o", "/dev/null", "--wrap", "sleep 600",
    ).strip()  # fmt: skip

    status = _sflow(fault_cluster, "status", str(run_dir))
    assert "1 submission(s) under way" in status.stdout, status.stdout + status.stderr
    runs = _sflow(fault_cluster, "runs", "--output-dir", str(work / "out"))
    (row,) = [line.split() for line in runs.stdout.splitlines() if line.startswith(run_dir.name)]
    assert row[2] == "killed*" and "sflow cancel RUN finds them" in runs.stdout, runs.stdout

    first = _sflow(fault_cluster, "cancel", str(run_dir))
    assert first.returncode == 0, first.stderr
    assert f"job (submitted as sflow died, found by its tag) {job}: cancelled (was " in first.stdout, (
        first.stdout
    )
    wait_for("the job to end", lambda: not _alive(fault_cluster, job), timeout=120)
    assert json.loads((run_dir / "cancel.json").read_text())["cancelled"] == [job]
    # another run's job of the same name, another user's with the same tag: not ours to cancel
    assert fault_cluster.job(other_run)["JobState"] == "PENDING"
    assert fault_cluster.job(other_user)["JobState"] == "PENDING"

    again = _sflow(fault_cluster, "cancel", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert f"{job}: already ended" in again.stdout and "cancelled (was" not in again.stdout, again.stdout
    assert fault_cluster.job(other_run)["JobState"] == "PENDING"
    fault_cluster.slurm("scancel", other_run, other_user)


def test_cancel_finds_the_allocation_of_a_run_killed_while_salloc_ran(
    fault_cluster: FaultCluster, start_sflow
) -> None:
    name = f"sflow-fault-salloc-{uuid.uuid4().hex[:6]}"
    blocker = fault_cluster.slurm(
        "sbatch", "--parsable", "--exclusive", "-N", str(len(fault_cluster.nodes)), "-J", f"{name}-blocker",
        "-o", "/dev/null", "--wrap", "sleep 600",
    ).strip()  # fmt: skip
    wait_for(
        "the blocker to hold every node", lambda: fault_cluster.job(blocker).get("JobState") == "RUNNING"
    )
    work = fault_cluster.work_dir / name
    held = _held(work, "salloc", HELD_SALLOC)
    gate = work / "gate"
    real = shutil.which("salloc")
    assert real is not None
    env = fault_cluster.env(PATH=f"{held.parent}:{os.environ['PATH']}", REAL_SALLOC=real, GATE=str(gate))
    run = start_sflow(WORKFLOW.format(name=name), env=env)
    try:
        wait_for("salloc to ask for the job", Path(f"{gate}.submitted").exists, timeout=180)
        said = Path(f"{gate}.said").read_text()
        job = said.split("job allocation ", 1)[1].split()[0]
        run_dir = run.run_dir()
        assert run_dir is not None
        entries = read_journal(run_dir)
        (submitting,) = [e for e in entries if e.kind == SUBMITTING]
        assert dict(submitting.info)["submits"] == ALLOCATION
        assert not [e for e in entries if e.kind == ALLOCATION]  # the id reached no file of the run
        run.proc.kill()
        run.proc.wait()
    finally:
        Path(f"{gate}.release").touch()
    assert fault_cluster.job(job)["JobState"] == "PENDING"  # it would run once the nodes are free
    assert fault_cluster.job(job)["Comment"] == submitting.tag

    first = _sflow(fault_cluster, "cancel", str(run_dir))
    assert first.returncode == 0, first.stderr
    assert f"allocation (submitted as sflow died, found by its tag) {job}: cancelled (was PENDING)" in (
        first.stdout
    ), first.stdout
    wait_for("the allocation to end", lambda: not _alive(fault_cluster, job), timeout=120)
    wait_for("salloc to exit", lambda: not _running(held), timeout=60)
    assert fault_cluster.job(blocker)["JobState"] == "RUNNING"  # not the run's: left alone
    again = _sflow(fault_cluster, "cancel", str(run_dir))
    assert again.returncode == 0 and f"{job}: already ended" in again.stdout, again.stdout
    fault_cluster.slurm("scancel", blocker)
