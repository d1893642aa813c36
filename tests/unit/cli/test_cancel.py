"""`sflow cancel`: a run whose sflow was killed but not yet reaped (a zombie) counts as dead."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sflow.cli.cancel import cancel_run
from sflow.record.status import owner_alive, process_start, run_alive


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
