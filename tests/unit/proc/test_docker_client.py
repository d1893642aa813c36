"""A docker client command the run no longer waits for is killed, not left running."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sflow.proc.container import Daemon, docker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cancelled_docker_command_leaves_no_client_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "client.pid"
    fake = tmp_path / "docker"  # a client that hangs, as one talking to a stuck daemon does
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    async def scenario() -> int:
        call = asyncio.create_task(docker(Daemon(), "pull", "busybox"))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return int(pidfile.read_text())

    pid = asyncio.run(scenario())
    assert not _alive(pid)  # killed and reaped before the cancellation went on
