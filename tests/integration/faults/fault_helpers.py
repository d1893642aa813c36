"""What the fault tests use: the fault cluster, the faults it can be made to suffer, waiting for a condition.

A module of its own name (not conftest): several conftest modules are imported in one session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
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
