"""GPU locks between sflow runs: one process per run here, so the holder is a second open file
(flock conflicts between open files as it does between processes)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sflow.backends import gpu_locks
from sflow.backends.gpu_locks import GpuClaim, GpusBusy, reserve, try_lock

RUN_A = {"run": "run-a", "pid": 111, "task": "train"}
RUN_B = {"run": "run-b", "pid": 222, "task": "eval"}


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(gpu_locks.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.setattr(gpu_locks, "POLL_SECONDS", 0.01)
    return tmp_path / "locks"


def test_a_held_gpu_fails_another_run_at_once_naming_the_holder() -> None:
    held = try_lock([GpuClaim("unix:///run/docker.sock", (0, 1))], RUN_A)
    assert not isinstance(held, str)
    with pytest.raises(GpusBusy) as err:
        asyncio.run(reserve([GpuClaim("unix:///run/docker.sock", (1,))], RUN_B, wait=None))
    assert str(err.value) == (
        "GPU 1 of docker host 'unix:///run/docker.sock' is held by sflow run run-a (pid 111, task 'train'); "
        "set wait_for_gpus on the backend to wait for it"
    )
    held.release()
    assert not isinstance(try_lock([GpuClaim("unix:///run/docker.sock", (1,))], RUN_B), str)


def test_other_gpus_and_other_hosts_are_free(lock_dir: Path) -> None:
    held = try_lock([GpuClaim("local", (0,))], RUN_A)
    assert not isinstance(held, str)
    other = asyncio.run(reserve([GpuClaim("local", (1,)), GpuClaim("ssh://root@b", (0,))], RUN_B, wait=None))
    assert json.loads((lock_dir / "ssh_root_b.gpu0.lock").read_text()) == RUN_B
    other.release()
    held.release()


def test_nothing_is_kept_when_one_gpu_of_the_claim_is_held() -> None:
    held = try_lock([GpuClaim("local", (1,))], RUN_A)
    assert isinstance(try_lock([GpuClaim("local", (0, 1))], RUN_B), str)
    assert not isinstance(held, str)
    assert not isinstance(try_lock([GpuClaim("local", (0,))], RUN_A), str)  # GPU 0 was let go


def test_a_waiting_run_gets_the_gpus_once_released() -> None:
    async def scenario() -> list[str]:
        held = try_lock([GpuClaim("local", (0,))], RUN_A)
        assert not isinstance(held, str)
        heard: list[str] = []
        waiting = asyncio.ensure_future(
            reserve([GpuClaim("local", (0,))], RUN_B, wait=0, on_wait=heard.append)
        )
        while not heard:
            await asyncio.sleep(0)
        assert not waiting.done()
        held.release()
        (await waiting).release()
        return heard

    assert asyncio.run(scenario()) == [
        "GPU 0 of docker host 'local' is held by sflow run run-a (pid 111, task 'train')"
    ]


def test_waiting_has_a_limit() -> None:
    held = try_lock([GpuClaim("local", (0,))], RUN_A)
    with pytest.raises(GpusBusy, match=r"still after waiting 0.05s \(wait_for_gpus\)"):
        asyncio.run(reserve([GpuClaim("local", (0,))], RUN_B, wait=0.05))
    assert not isinstance(held, str)


def test_a_dead_holder_leaves_nothing_held(lock_dir: Path) -> None:
    pid = os.fork()
    if pid == 0:  # the holder: lock, then exit without releasing
        try_lock([GpuClaim("local", (0,))], RUN_A)
        os._exit(0)
    os.waitpid(pid, 0)
    assert not isinstance(try_lock([GpuClaim("local", (0,))], RUN_B), str)
