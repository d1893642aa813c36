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
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_SLURM = REPO_ROOT / "scripts" / "dev-slurm"
INSTANCE = "faults"
UP_TIMEOUT_S = 900
# The lab's own variables would point dev-slurm at another instance's directory.
_LAB_VARS = ("SFLOW_SLURM_LAB_DIR", "SFLOW_SLURM_PORT_BASE", "SFLOW_SLURM_INSTANCE")


def dev_slurm(*args: str, timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`scripts/dev-slurm -i faults ARGS` with the shared lab's variables left out."""
    env = {k: v for k, v in os.environ.items() if k not in _LAB_VARS}
    return subprocess.run(
        [str(DEV_SLURM), "-i", INSTANCE, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def wait_for(what: str, condition: Callable[[], object], timeout: float = 120.0) -> object:
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


@dataclass(frozen=True)
class FaultCluster:
    """The fault-test cluster, with the faults it can be made to suffer."""

    conf: str
    lab_dir: Path
    nodes: tuple[str, ...]

    @property
    def work_dir(self) -> Path:
        return self.lab_dir / "work"

    def env(self, **extra: str) -> dict[str, str]:
        """os.environ pointing at this cluster (for `sflow run` subprocesses)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
        return {**env, "SLURM_CONF": self.conf, **extra}

    def slurm(self, *argv: str, check: bool = True) -> str:
        """A Slurm client command against this cluster; its stdout."""
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=self.env())
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o` as a dict ({} when Slurm no longer knows the job)."""
        out = self.slurm("scontrol", "show", "job", "-o", job_id, check=False)
        return dict(pair.split("=", 1) for pair in out.split() if "=" in pair)

    def live_jobs(self) -> list[str]:
        """Ids of jobs not finished yet (pending, running, completing)."""
        return self.slurm("squeue", "-h", "-o", "%i").split()

    def steps(self) -> list[str]:
        return self.slurm("squeue", "-h", "--steps", "-o", "%i").split()

    def set_node_down(self, node: str) -> None:
        self.slurm("scontrol", "update", f"nodename={node}", "state=down", "reason=sflow-fault-test")

    def kill_node(self, node: str) -> list[int]:
        """SIGKILL the node's slurmd and everything it runs (slurmstepd, tasks): the node is gone.

        Each node's slurmd lives in a UTS namespace of its own; every process in it is that node's.
        """
        pid = int((self.lab_dir / "run" / f"slurmd-{node}.pid").read_text().split()[0])
        namespace = os.readlink(f"/proc/{pid}/ns/uts")
        victims = [p for p in _pids() if _uts(p) == namespace]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return victims

    def stop_controller(self) -> None:
        """SIGTERM slurmctld (never SIGKILL: it would lose state) and wait until it has exited."""
        pid = int((self.lab_dir / "run" / "slurmctld.pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        wait_for("slurmctld to exit", lambda: not _alive(pid, "slurmctld"), timeout=60)

    def restore(self) -> None:
        """Every daemon running and every node back in service (`dev-slurm -i faults up`)."""
        done = dev_slurm("up", "--no-smoke")
        if done.returncode != 0:
            raise AssertionError(f"dev-slurm -i faults up failed:\n{done.stdout}{done.stderr}")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _uts(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/uts")
    except OSError:
        return None


def _alive(pid: int, comm: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip() == comm and fields[0] not in ("Z", "X")
    except OSError:
        return False


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
        return self.proc.wait(timeout=timeout)

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
