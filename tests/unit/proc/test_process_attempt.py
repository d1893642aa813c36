"""Stopping a task's process group: the grace belongs to the whole group, not just its leader."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sflow.proc.process import LaunchSpec, ProcessAttempt, group_has_live

SLOW_CLEANUP = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    time.sleep(3.0)\n"
    "    print('clean done', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


async def _start(tmp_path: Path) -> ProcessAttempt:
    (tmp_path / "svc.py").write_text(SLOW_CLEANUP)
    script = f"echo start; python3 {tmp_path / 'svc.py'}; echo after"  # bash stays the group leader
    spec = LaunchSpec(["bash", "-c", script], dict(os.environ), tmp_path, tmp_path / "x.log")
    attempt = await ProcessAttempt.start(spec)
    for _ in range(500):
        if "up" in (tmp_path / "x.log").read_text():
            break
        await asyncio.sleep(0.01)
    return attempt


def test_children_get_the_whole_grace_to_clean_up(tmp_path: Path) -> None:
    async def main() -> float:
        attempt = await _start(tmp_path)
        began = time.monotonic()
        await attempt.stop(grace=5)
        assert not group_has_live(attempt.proc.pid)
        return time.monotonic() - began

    took = asyncio.run(main())
    assert "clean done" in (tmp_path / "x.log").read_text()
    assert 2.9 < took < 4.5  # more than the 2 s leftovers get after a natural exit


def test_a_shorter_second_stop_kills_at_once(tmp_path: Path) -> None:
    async def main() -> float:
        attempt = await _start(tmp_path)
        first = asyncio.ensure_future(attempt.stop(grace=30))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        await attempt.stop(grace=0)
        await first
        assert not group_has_live(attempt.proc.pid)
        return time.monotonic() - began

    took = asyncio.run(main())
    assert took < 5  # far below the first stop's 30 s grace, with room for a loaded machine
    assert "clean done" not in (tmp_path / "x.log").read_text()


def test_a_stopped_group_gets_its_term_at_once(tmp_path: Path) -> None:
    """A frozen (SIGSTOP) task is woken by the stop, so its TERM handler runs within the grace."""

    async def main() -> float:
        script = "trap 'echo got term; exit 3' TERM; echo up; while :; do sleep 0.05; done"
        spec = LaunchSpec(["bash", "-c", script], dict(os.environ), tmp_path, tmp_path / "y.log")
        attempt = await ProcessAttempt.start(spec)
        while "up" not in (tmp_path / "y.log").read_text():
            await asyncio.sleep(0.01)
        os.killpg(attempt.proc.pid, signal.SIGSTOP)
        began = time.monotonic()
        await attempt.stop(grace=20)
        return time.monotonic() - began

    took = asyncio.run(main())
    assert "got term" in (tmp_path / "y.log").read_text()
    assert took < 10  # far below the 20 s grace a frozen group would have waited out
