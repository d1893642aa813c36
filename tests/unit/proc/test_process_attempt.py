"""Stopping a task's process group: the grace belongs to the whole group, not just its leader."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from sflow.proc.attempt import ProcessAttempt
from sflow.proc.groups import group_has_live, processes
from sflow.proc.spawn import LaunchSpec

SLOW_CLEANUP = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    time.sleep(float(sys.argv[1]))\n"
    "    print('clean done', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)
# Hang guards: far below the graces the stops below must not wait out.
LIMIT = 60


async def _start(tmp_path: Path, cleanup: float) -> ProcessAttempt:
    """bash leading a group whose Python child takes `cleanup` seconds to handle TERM."""
    (tmp_path / "svc.py").write_text(SLOW_CLEANUP)
    script = f"echo start; python3 {tmp_path / 'svc.py'} {cleanup}; echo after"  # bash stays the leader
    spec = LaunchSpec(["bash", "-c", script], dict(os.environ), tmp_path, tmp_path / "x.log")
    attempt = await ProcessAttempt.start(spec)
    while "up" not in (tmp_path / "x.log").read_text():
        await asyncio.sleep(0.01)
    return attempt


def test_children_get_the_whole_grace_to_clean_up(tmp_path: Path) -> None:
    """3 s of cleanup: more than the 2 s leftovers get after a natural exit; done long before the grace."""

    async def main() -> None:
        attempt = await _start(tmp_path, cleanup=3)
        await asyncio.wait_for(attempt.stop(grace=600), LIMIT)
        assert not group_has_live(attempt.proc.pid)

    asyncio.run(main())
    assert "clean done" in (tmp_path / "x.log").read_text()


def test_a_shorter_second_stop_kills_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        attempt = await _start(tmp_path, cleanup=600)
        first = asyncio.ensure_future(attempt.stop(grace=600))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(attempt.stop(grace=0), LIMIT)
        await asyncio.wait_for(first, LIMIT)
        assert not group_has_live(attempt.proc.pid)

    asyncio.run(main())
    assert "clean done" not in (tmp_path / "x.log").read_text()


def group_frozen(pgid: int) -> bool:
    """Every live process of the group is stopped (state T), its leader among them."""
    states = {pid: fields[0] for pid, fields in processes() if int(fields[2]) == pgid}
    return states.get(pgid) == b"T" and all(state in (b"T", b"Z") for state in states.values())


def test_a_stopped_group_gets_its_term_at_once(tmp_path: Path) -> None:
    """A frozen (SIGSTOP) task is woken by the stop, so its TERM handler runs within the grace."""

    async def main() -> None:
        script = "trap 'echo got term; exit 3' TERM; echo up; while :; do sleep 0.05; done"
        spec = LaunchSpec(["bash", "-c", script], dict(os.environ), tmp_path, tmp_path / "y.log")
        attempt = await ProcessAttempt.start(spec)
        while "up" not in (tmp_path / "y.log").read_text():
            await asyncio.sleep(0.01)
        os.killpg(attempt.proc.pid, signal.SIGSTOP)
        # the freeze takes hold as each process is next scheduled; a child bash was forking as it
        # came gets it later still: stop only a group that is frozen
        while not group_frozen(attempt.proc.pid):
            await asyncio.sleep(0.01)
        await asyncio.wait_for(attempt.stop(grace=600), LIMIT)

    asyncio.run(main())
    assert "got term" in (tmp_path / "y.log").read_text()
