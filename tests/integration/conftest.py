"""Integration tests run against a real Slurm cluster on this machine (scripts/dev-slurm).

Every test under tests/integration gets the session-scoped ``slurm_cluster`` fixture automatically
and the ``slurm`` marker. The fixture runs ``scripts/dev-slurm up`` once per session (about a second
when the cluster is already up) and sets ``SLURM_CONF`` in ``os.environ`` for the session.

Environment:
  SFLOW_SLURM_LAB=skip     skip every integration test without touching the machine.
  SFLOW_SLURM_LAB_DIR=...  state directory of the cluster (default /tmp/sflow-slurm-lab).
  CI=true                  an environment that cannot host the cluster (not root, not Debian) is an
                           error instead of a skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SLURM = REPO_ROOT / "scripts" / "dev-slurm"
HERE = Path(__file__).resolve().parent

# scripts/dev-slurm's exit code for "this machine cannot host the cluster".
EXIT_UNSUPPORTED = 3
UP_TIMEOUT_S = 900  # a first run installs packages with apt


@dataclass(frozen=True)
class SlurmCluster:
    """The running test cluster."""

    conf: str  # path of slurm.conf; also exported as SLURM_CONF for the session
    nodes: tuple[str, ...]  # ("node1", "node2", "node3", "node4")
    partition: str  # "debug" (the default partition)
    lab_dir: str  # state directory: logs under <lab_dir>/log, scratch space under <lab_dir>/work
    gpus_per_node: int = 2  # fake GPUs: CUDA_VISIBLE_DEVICES is set, no real device behind it
    cpus_per_node: int = 4

    @property
    def work_dir(self) -> str:
        """A world-writable scratch directory inside the lab dir (for job output files)."""
        return os.path.join(self.lab_dir, "work")

    def env(self) -> dict[str, str]:
        """A copy of os.environ with SLURM_CONF pointing at this cluster (for subprocesses)."""
        return {**os.environ, "SLURM_CONF": self.conf}

    def scratch(self, label: str) -> Path:
        """A new directory under the work dir, where the nodes can write too."""
        path = Path(self.work_dir) / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        return path

    def sflow_run(self, workflow: str, *args: str, label: str = "run", timeout: float = 180.0) -> LabRun:
        """`sflow run` of `workflow` (YAML text, as wf.yaml) in a new scratch directory, to its end."""
        work = self.scratch(label)
        (work / "wf.yaml").write_text(workflow)
        done = subprocess.run(
            [sys.executable, "-m", "sflow", "run", "-f", "wf.yaml", "--output-dir", "out", *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=self.env(),
        )
        runs = [p for p in (work / "out").glob("*") if (p / "run.json").is_file()]
        assert len(runs) == 1, f"no run directory under {work / 'out'}:\n{done.stdout}{done.stderr}"
        return LabRun(done, runs[0])

    def job_field(self, job: str, key: str) -> str:
        """One field of `scontrol show job -o` ('' once Slurm has forgotten the job)."""
        show = subprocess.run(
            ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=60, env=self.env()
        ).stdout
        match = re.search(rf"\b{key}=(\S+)", show)
        return match.group(1) if match else ""

    def wait_final(self, job: str, timeout: float = 180.0) -> str:
        """The job's state once it is final (fails naming the last state after `timeout` s)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.job_field(job, "JobState")
            if state and state not in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}:
                return state
            time.sleep(0.2)
        raise AssertionError(f"job {job} still {state or '?'} after {timeout:g}s")


@dataclass(frozen=True)
class LabRun:
    """An `sflow run` that has ended: its process and its run directory."""

    done: subprocess.CompletedProcess[str]
    run_dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())


class SqueueJob(NamedTuple):
    job_id: str  # "123", or "123_4" for an array task
    state: str  # PENDING, RUNNING, COMPLETING, ...
    nodes: str  # node list, or the pending reason's node list ("" while pending)
    name: str


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _unsupported(reason: str) -> None:
    if _ci():
        pytest.fail(f"CI=true but the Slurm test cluster cannot run here: {reason}", pytrace=False)
    pytest.skip(f"Slurm test cluster unavailable: {reason}")


def _precheck() -> str | None:
    """Why this machine cannot host the cluster, or None."""
    if not DEV_SLURM.is_file():
        return f"{DEV_SLURM} is missing"
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "not a POSIX system"
    if os.geteuid() != 0:
        return "not running as root (scripts/dev-slurm needs root on Debian 12)"
    if not Path("/etc/debian_version").is_file():
        return "not a Debian system (scripts/dev-slurm targets Debian 12 with apt)"
    return None


def _conf_from_env_output(out: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value.strip().strip("'\"")
    return values


def squeue_ours(prefix: str = "", conf: str | None = None) -> list[SqueueJob]:
    """Live (not finished) jobs whose name starts with ``prefix``: for leak checks.

    Finished jobs (COMPLETED, FAILED, CANCELLED, ...) are not included.
    """
    env = dict(os.environ)
    if conf:
        env["SLURM_CONF"] = conf
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%i|%T|%N|%j"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    jobs = []
    for line in out.splitlines():
        if not line.strip():
            continue
        job_id, state, nodes, name = line.split("|", 3)
        if name.startswith(prefix):
            jobs.append(SqueueJob(job_id.strip(), state.strip(), nodes.strip(), name))
    return jobs


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.environ.get("SFLOW_SLURM_LAB", "").strip().lower() == "skip":
        pytest.skip("SFLOW_SLURM_LAB=skip")
    reason = _precheck()
    if reason:
        _unsupported(reason)

    try:
        proc = subprocess.run(
            [str(DEV_SLURM), "up"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/dev-slurm up did not finish in {UP_TIMEOUT_S}s:\n{exc.stderr}", pytrace=False)
    output = f"{proc.stdout}{proc.stderr}".strip()
    if proc.returncode == EXIT_UNSUPPORTED:
        _unsupported(output.splitlines()[-1] if output else "unsupported environment")
    if proc.returncode != 0:
        pytest.fail(f"scripts/dev-slurm up failed (exit {proc.returncode}):\n{output}", pytrace=False)

    env_out = subprocess.run(
        [str(DEV_SLURM), "env"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    values = _conf_from_env_output(env_out)
    conf = values["SLURM_CONF"]
    lab_dir = values["SFLOW_SLURM_LAB_DIR"]

    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", conf)
    try:
        sinfo = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N %P"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        nodes: list[str] = []
        partition = ""
        for line in sinfo.splitlines():
            node, part = line.split()
            if part.endswith("*"):
                partition = part.rstrip("*")
            if node not in nodes:
                nodes.append(node)
        yield SlurmCluster(conf=conf, nodes=tuple(sorted(nodes)), partition=partition, lab_dir=lab_dir)
    finally:
        mp.undo()


@pytest.fixture(name="squeue_ours", scope="session")
def squeue_ours_fixture(slurm_cluster: SlurmCluster) -> Callable[[str], list[SqueueJob]]:
    """``squeue_ours(prefix)`` -> live jobs of the test cluster whose name starts with prefix."""

    def _squeue_ours(prefix: str = "") -> list[SqueueJob]:
        return squeue_ours(prefix, conf=slurm_cluster.conf)

    return _squeue_ours


@pytest.fixture(scope="module")
def no_leaked_jobs(
    request: pytest.FixtureRequest, squeue_ours: Callable[[str], list[SqueueJob]]
) -> Iterator[None]:
    """After a module's tests, none of its jobs (names starting with the module's `PREFIX`) is left.

    Jobs may take a moment to leave squeue after their end; what is still there after 20 s is
    scancelled, and the check fails naming it. Use it with
    `pytestmark = pytest.mark.usefixtures("no_leaked_jobs")`.
    """
    yield
    prefix = request.module.PREFIX
    deadline = time.monotonic() + 20
    while (left := squeue_ours(prefix)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        subprocess.run(["scancel", *[j.job_id for j in left]], check=False)
    assert not left, f"jobs left behind: {left}"


@pytest.fixture(autouse=True)
def _integration_needs_slurm(slurm_cluster: SlurmCluster) -> None:
    """Every test under tests/integration runs against the cluster (or is skipped with it)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Runs before pytest's own -m selection, so `-m slurm` / `-m "not slurm"` see the marker, and
    # before pytest-xdist reads the group: with `--dist loadgroup` one worker runs them all, one
    # after the other. They share four nodes, and several wait for a job to start or assert how
    # soon it ends, which another test's jobs holding the nodes would break.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.xdist_group("slurm"))
