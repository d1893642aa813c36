"""Fault tests run on a second Slurm cluster of their own (`scripts/dev-slurm -i faults`).

They take nodes down, kill slurmd and restart slurmctld: on the shared cluster that would break
every other test running at the time. The `fault_cluster` fixture brings the second cluster up
(once per session), takes an exclusive lock on it for the test (fault tests never overlap, also
across pytest-xdist workers and concurrent test runs), points SLURM_CONF at it, and afterwards
puts it back as it was: daemons restarted, nodes resumed, jobs of the test cancelled.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from fault_helpers import FaultCluster, dev_slurm, wait_for  # noqa: E402


@pytest.fixture(scope="session")
def fault_cluster_up(slurm_cluster: object) -> FaultCluster:
    """The fault cluster, started once per session (its own state dir, ports and node names)."""
    done = dev_slurm("up")
    if done.returncode != 0:
        pytest.fail(f"scripts/dev-slurm -i faults up failed (exit {done.returncode}):\n{done.stderr}")
    values = {}
    for line in dev_slurm("env", timeout=30).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = value.strip("'\"").replace("\\ ", " ")
    return FaultCluster(
        conf=values["SLURM_CONF"],
        lab_dir=Path(values["SFLOW_SLURM_LAB_DIR"]),
        nodes=tuple(values["SFLOW_SLURM_NODES"].split()),
    )


@pytest.fixture
def fault_cluster(fault_cluster_up: FaultCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultCluster]:
    """The fault cluster for one test alone; back in service, with no job left, afterwards."""
    cluster = fault_cluster_up
    with open(cluster.lab_dir / ".fault-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cluster.restore()  # a test interrupted before its clean-up may have left a node down
        monkeypatch.setenv("SLURM_CONF", cluster.conf)
        try:
            yield cluster
        finally:
            cluster.restore()
            left = cluster.live_jobs()
            if left:
                cluster.slurm("scancel", *left, check=False)
            wait_for("the fault cluster's jobs to end", lambda: not cluster.live_jobs(), timeout=180)


@dataclass
class SflowRun:
    """An `sflow run` started in the background against the fault cluster."""

    proc: subprocess.Popen[str]
    output_dir: Path
    stderr_path: Path

    def wait(self, timeout: float = 300.0) -> int:
        """sflow's exit code; a process that outlived its run record (it says so) fails the test
        with what held it, from sflow.log."""
        code = self.proc.wait(timeout=timeout)
        if "the run is recorded; its process still waits for" in self.stderr:
            run_dir = self.run_dir()
            log = (run_dir / "sflow.log").read_text() if run_dir else ""
            pytest.fail(f"sflow did not exit once its run was recorded:\n{self.stderr}\n{log[-20000:]}")
        return code

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def run_dir(self) -> Path | None:
        dirs = (
            [p for p in self.output_dir.iterdir() if (p / "run.json").is_file()]
            if self.output_dir.exists()
            else []
        )
        return dirs[0] if dirs else None

    def summary(self) -> dict[str, object]:
        run_dir = self.run_dir()
        assert run_dir is not None, self.stderr
        return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def start_sflow(fault_cluster: FaultCluster, tmp_path: Path) -> Iterator[Callable[..., SflowRun]]:
    """`start_sflow(yaml_text, *args)` runs `sflow run` on the fault cluster in the background."""
    started: list[SflowRun] = []

    def start(workflow: str, *args: str, env: dict[str, str] | None = None) -> SflowRun:
        work = Path(fault_cluster.work_dir) / f"{tmp_path.name}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        (work / "wf.yaml").write_text(workflow)
        stderr_path = work / "sflow.stderr"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sflow", "run", "-f", "wf.yaml", "--output-dir", "out", "--no-tui", *args],
            cwd=work,
            env=env or fault_cluster.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(stderr_path, "w"),  # noqa: SIM115 - closed with the process
            text=True,
        )
        run = SflowRun(proc, work / "out", stderr_path)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.terminate()
            try:
                run.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
