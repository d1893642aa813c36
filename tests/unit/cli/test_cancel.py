"""`sflow cancel`: a run whose sflow was killed but not yet reaped (a zombie) counts as dead."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sflow.cli.cancel import cancel_run
from sflow.record.status import CANCEL_FILE, boot_id, owner_alive, process_start, read_status, run_alive


@pytest.fixture
def zombie(wait_until: Callable[..., None]) -> Iterator[subprocess.Popen[bytes]]:
    """A child that has exited and that nobody has waited for yet."""
    child = subprocess.Popen(["true"])
    wait_until(lambda: _state(child.pid) == "Z", "the child to be a zombie")
    yield child
    child.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def _run_dir(tmp_path: Path, pid: int) -> Path:
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    owner = {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid)}
    (run_dir / "run.json").write_text(json.dumps(owner))
    return run_dir


def test_a_zombie_sflow_is_not_alive(tmp_path: Path, zombie: subprocess.Popen[bytes]) -> None:
    assert not run_alive(_run_dir(tmp_path, zombie.pid))


def test_a_running_sflow_is_alive(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert run_alive(_run_dir(tmp_path, child.pid))
        assert not owner_alive({"host": socket.gethostname(), "pid": child.pid, "pid_start": -1})  # reused
    finally:
        child.kill()
        child.wait()


def test_cancel_does_not_wait_for_a_zombie_sflow(tmp_path: Path, zombie: subprocess.Popen[bytes]) -> None:
    run_dir = _run_dir(tmp_path, zombie.pid)
    lines = cancel_run(run_dir, stop_wait=30)
    assert lines == ["run-1 holds nothing in Slurm"]  # no SIGTERM sent, nothing waited for


def _task_running(run_dir: Path, pid: int, pid_start: int | None) -> None:
    """The run recorded task `nap` running as the process group of `pid`, started at `pid_start`."""
    owner = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**owner, "boot_id": boot_id()}))
    event = {"time": 1.0, "task": "nap", "state": "running", "attempt": 1, "pid": pid, "pid_start": pid_start}
    (run_dir / "events.jsonl").write_text(json.dumps(event) + "\n")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process leading a session and process group of its own, as a task's does."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield child
    child.kill()
    child.wait()


def test_a_group_whose_leader_started_at_another_time_is_left_alone(
    tmp_path: Path, zombie: subprocess.Popen[bytes], sleeper: subprocess.Popen[bytes]
) -> None:
    run_dir = _run_dir(tmp_path, zombie.pid)
    start = process_start(sleeper.pid)
    assert start is not None
    _task_running(run_dir, sleeper.pid, start - 1)  # the recorded task's process had this pid before
    lines = cancel_run(run_dir, stop_wait=30)
    assert (
        f"task nap: process group {sleeper.pid}: left alone, its leader pid is now another process's" in lines
    )
    assert sleeper.poll() is None
    assert json.loads((run_dir / CANCEL_FILE).read_text())["stopped_groups"] == []


def test_the_group_of_a_task_of_a_dead_sflow_is_stopped_once(
    tmp_path: Path, zombie: subprocess.Popen[bytes], sleeper: subprocess.Popen[bytes]
) -> None:
    run_dir = _run_dir(tmp_path, zombie.pid)
    _task_running(run_dir, sleeper.pid, process_start(sleeper.pid))
    assert read_status(run_dir).tasks["nap"].state == "running"
    assert f"task nap: process group {sleeper.pid}: stopped by TERM" in cancel_run(run_dir, stop_wait=30)
    assert sleeper.wait() == -signal.SIGTERM
    assert read_status(run_dir).tasks["nap"].state == "cancelled"
    assert cancel_run(run_dir, stop_wait=30) == ["run-1 holds nothing in Slurm"]
