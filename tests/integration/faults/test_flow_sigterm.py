"""SIGTERM to a Python flow whose mapped task runs as a Slurm job array, some elements running and
the others queued: nothing of it stays in Slurm (job, array element or step), and the record says
the run was cancelled, as Ctrl-C does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

from fault_helpers import FaultCluster, wait_for

ITEMS = 24
FLOW = """
import sys
import time

import sflow

prefix, shared, out, items = sys.argv[1:5]
sflow.config(
    environments={
        "slurm": {
            "executor": "slurm",
            "executor_config": {
                "time": "0:10:00",
                "shared_dir": shared,
                "job_name_prefix": prefix,
                "poll_interval": 0.5,
                "extra_args": ["--exclusive"],
            },
        }
    }
)
with sflow.flow("sigterm-array", environment="slurm", output_dir=out) as f:

    @f.task(map=range(int(items)))
    def sleepy(x):
        time.sleep(600)
"""


def ours(cluster: FaultCluster, prefix: str, *flags: str) -> list[tuple[str, str]]:
    """(id, state) of the jobs (or, with `--steps`, steps) whose name starts with `prefix`."""
    if "--steps" in flags:
        lines = cluster.slurm("squeue", "-h", *flags, "-o", "%i %j").splitlines()
        return [(i, "") for i, _, name in (ln.partition(" ") for ln in lines) if name.startswith(prefix)]
    lines = cluster.slurm("squeue", "-h", "-r", *flags, "-o", "%i %T %j").splitlines()
    return [(f[0], f[1]) for f in map(str.split, lines) if len(f) == 3 and f[2].startswith(prefix)]


def test_sigterm_to_a_flow_leaves_no_array_element_and_records_the_cancel(
    fault_cluster: FaultCluster,
) -> None:
    prefix = f"sflow-fault-term-{uuid.uuid4().hex[:6]}"
    work = fault_cluster.work_dir / prefix
    (work / "shared").mkdir(parents=True)
    (work / "flow.py").write_text(FLOW)
    stderr = work / "flow.stderr"
    argv = [
        sys.executable,
        str(work / "flow.py"),
        prefix,
        str(work / "shared"),
        str(work / "out"),
        str(ITEMS),
    ]
    with open(stderr, "w") as err:
        proc = subprocess.Popen(argv, cwd=work, env=fault_cluster.env(), stdout=err, stderr=err)
    try:
        states = wait_for(
            "some elements running and others queued",
            lambda: (
                (s := {state for _, state in ours(fault_cluster, prefix)}) >= {"RUNNING", "PENDING"} and s
            ),
            timeout=180,
        )
        assert states
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = stderr.read_text()
    assert code == 143, log  # it ends as SIGTERM asks, after its clean-up
    # scancel is done before sflow exits: nothing runs or waits any more, at most it is completing
    assert {state for _, state in ours(fault_cluster, prefix)} <= {"COMPLETING"}, log
    wait_for("the cancelled elements to end", lambda: not ours(fault_cluster, prefix), timeout=120)
    assert ours(fault_cluster, prefix, "--steps") == [], log
    (run_dir,) = [p for p in (work / "out").iterdir() if (p / "summary.json").is_file()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True, summary
    assert summary["tasks"]["sleepy"]["state"] == "cancelled", summary
