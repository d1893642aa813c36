"""`sflow.flow` tasks on the real test Slurm cluster: round trip, errors, job arrays, cancellation.

Task functions are defined inside the tests, so cloudpickle ships them by value; the
exception type below is pickled by reference, so the jobs import this module (its
directory is put on PYTHONPATH, which sbatch exports to the jobs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sflow.flow
from sflow.dispatch.config import config as configure_dispatch
from sflow.dispatch.config import reset_config
from sflow.engine import State
from sflow.slurm.journal import JOB, read_journal

HERE = Path(__file__).resolve().parent
SlurmCluster = Any  # the fixture's type lives in conftest.py (not importable)


class RemoteBoom(Exception):
    """Raised in a job; must come back to the caller as itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


@pytest.fixture
def prefix() -> str:
    return f"sflow-it-flow-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `slurm` dispatch environment on the test cluster; jobs named `<prefix>-<task>`."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
    )
    shared = Path(slurm_cluster.work_dir) / prefix
    shared.mkdir(parents=True)
    reset_config()
    configure_dispatch(
        environments={
            "slurm": {
                "executor": "slurm",
                "executor_config": {
                    "partition": slurm_cluster.partition,
                    "time": "0:05:00",
                    "shared_dir": str(shared),
                    "job_name_prefix": prefix,
                    "poll_interval": 0.5,
                },
            }
        }
    )
    yield "slurm"
    reset_config()
    shutil.rmtree(shared, ignore_errors=True)


def _wait_gone(squeue_ours: Callable[[str], list], prefix: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    jobs = squeue_ours(prefix)
    while jobs and time.monotonic() < deadline:
        time.sleep(0.5)
        jobs = squeue_ours(prefix)
    return jobs


def _array_elements(job_id: str) -> list[str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60
    ).stdout
    return re.findall(rf"\bArrayJobId={job_id} ArrayTaskId=(\S+)", out)


def test_one_task_round_trip(slurm_env: str, tmp_path: Path, slurm_cluster: SlurmCluster) -> None:
    with sflow.flow("it-round-trip", inputs={"word": "hi"}, output_dir=tmp_path) as f:

        @f.task(environment=slurm_env)
        def remote(word):
            import socket

            return word.upper(), socket.gethostname(), os.environ.get("SLURM_JOB_ID")

        @f.task
        def local(remote):
            return remote[0] + "!"

    word, host, job_id = f.result.remote
    assert word == "HI" and host in slurm_cluster.nodes and job_id
    assert f.result.local == "HI!"
    assert f.run_dir is not None
    info = json.loads((f.run_dir / "summary.json").read_text())["tasks"]["remote"]
    assert info["state"] == "succeeded" and info["executor"] == "slurm"
    assert info["job_ids"] == [job_id]
    assert Path(info["job_logs"][0]).exists()
    assert job_id in (f.run_dir / "remote" / "remote.log").read_text()


def test_remote_exception_keeps_its_type(slurm_env: str) -> None:
    with pytest.raises(RemoteBoom) as info, sflow.flow("it-boom", environment=slurm_env, record=False) as f:

        @f.task
        def boom():
            raise RemoteBoom("bad on the cluster", 13)

        @f.task
        def after(boom):
            return boom

    assert info.value.code == 13 and str(info.value.args[0]) == "bad on the cluster"
    assert "Remote traceback" in "\n".join(info.value.__notes__)
    assert f.states == {"boom": State.FAILED, "after": State.CANCELLED}


def test_map_of_200_items_is_one_job_array(slurm_env: str, tmp_path: Path) -> None:
    with sflow.flow("it-array", output_dir=tmp_path) as f:

        @f.task(map=range(200), environment=slurm_env)
        def square(x):
            return x * x

    assert f.result.square == [x * x for x in range(200)]
    assert f.run_dir is not None
    info = json.loads((f.run_dir / "summary.json").read_text())["tasks"]["square"]
    (array_id,) = info["job_ids"]  # one sbatch for all 200 items
    assert info["items"] == 200 and info["job_logs_total"] == 200
    elements = _array_elements(array_id)
    assert len(elements) == 200 or elements == ["0-199"], elements[:5]


def test_map_items_each_failing_once_are_resubmitted_together(
    slurm_env: str, tmp_path: Path, slurm_cluster: SlurmCluster, prefix: str
) -> None:
    marks = Path(slurm_cluster.work_dir) / prefix / "marks"  # seen by every node
    marks.mkdir()
    with sflow.flow("it-item-retries", inputs={"marks": str(marks)}, output_dir=tmp_path) as f:

        @f.task(map=range(4), environment=slurm_env, retries=1)
        def once(x, marks):
            try:
                os.close(os.open(os.path.join(marks, str(x)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return x * 10
            raise RemoteBoom(f"first attempt of item {x}", 5)

    assert f.result.once == [0, 10, 20, 30]
    assert f.run_dir is not None
    info = json.loads((f.run_dir / "summary.json").read_text())["tasks"]["once"]
    assert len(info["job_ids"]) == 2  # the items, then the four failed ones again in one array
    assert info["item_failures"] == 4 and info["attempts"] == 1
    events = [json.loads(line) for line in (f.run_dir / "events.jsonl").read_text().splitlines()]
    assert sorted((e["item"], e["attempt"], e["state"]) for e in events if "item" in e) == sorted(
        [(i, 1, "retrying") for i in range(4)] + [(i, 2, "succeeded") for i in range(4)]
    )


def _interrupt_when_queued(
    squeue_ours: Callable[[str], list], prefix: str, action: Callable[[], None]
) -> None:
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not squeue_ours(prefix):
            time.sleep(0.2)
        time.sleep(0.5)
        action()

    threading.Thread(target=watch, daemon=True).start()


def test_failure_elsewhere_cancels_queued_jobs(slurm_env: str, prefix: str, squeue_ours) -> None:
    started = threading.Event()
    _interrupt_when_queued(squeue_ours, prefix, started.set)
    with pytest.raises(RuntimeError, match="local failure"), sflow.flow("it-cancel", record=False) as f:

        @f.task(map=range(40), environment=slurm_env)
        def sleepy(x):
            time.sleep(120)

        @f.task
        async def fails_later():
            import asyncio

            while not started.is_set():
                await asyncio.sleep(0.1)
            raise RuntimeError("local failure")

    assert f.states["sleepy"] is State.CANCELLED
    assert _wait_gone(squeue_ours, prefix) == []


def test_ctrl_c_cancels_queued_jobs(slurm_env: str, prefix: str, squeue_ours) -> None:
    _interrupt_when_queued(squeue_ours, prefix, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt), sflow.flow("it-ctrl-c", environment=slurm_env, record=False) as f:

        @f.task(map=range(40))
        def sleepy(x):
            time.sleep(120)

        @f.task
        def single():
            time.sleep(120)

    assert set(f.states.values()) == {State.CANCELLED}
    assert _wait_gone(squeue_ours, prefix) == []


_KILLED_FLOW = """
import sys, time
import sflow.flow
from sflow.dispatch.config import config

partition, shared, prefix, out = sys.argv[1:5]
executor_config = {"partition": partition, "time": "0:05:00", "shared_dir": shared, "job_name_prefix": prefix}
config(environments={"slurm": {"executor": "slurm", "executor_config": executor_config}})
with sflow.flow("it-killed", environment="slurm", output_dir=out) as f:

    @f.task(map=range(3))
    def sleepy(x):
        time.sleep(300)

    @f.task
    def single():
        time.sleep(300)
"""


def test_sflow_cancel_stops_the_dispatched_jobs_of_a_killed_flow(
    slurm_env: str, prefix: str, squeue_ours, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_FLOW)
    shared = Path(slurm_cluster.work_dir) / prefix
    argv = [sys.executable, str(script), slurm_cluster.partition, str(shared), prefix, str(tmp_path / "out")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while not _all_running(squeue_ours(prefix), 4):  # the 3 elements of an array, and a job
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, squeue_ours(prefix)
            time.sleep(0.5)
        (run_dir,) = (p for p in (tmp_path / "out").iterdir() if p.is_dir())
        journalled = {e.slurm_id for e in read_journal(run_dir) if e.kind == JOB}
        live = {j.job_id.split("_")[0] for j in squeue_ours(prefix)}
        assert live and live <= journalled  # each job is in the journal once sbatch returned
        proc.kill()
        proc.wait()
        assert {j.job_id.split("_")[0] for j in squeue_ours(prefix)} == live  # the kill left them running
        cancel = [sys.executable, "-m", "sflow", "cancel", str(run_dir)]
        done = subprocess.run(cancel, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for job in live:
            assert f"job {job}: cancelled" in done.stdout, done.stdout
        assert _wait_gone(squeue_ours, prefix) == []
        again = subprocess.run(cancel, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "cancelled" not in again.stdout, again.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _all_running(jobs: list, count: int) -> bool:
    return len(jobs) == count and all(j.state == "RUNNING" for j in jobs)
