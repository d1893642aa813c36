"""Process groups and sessions, read from /proc: signal a group, tell whether any of it lives.

A task runs in a session of its own, so its process group holds everything it started
(grandchildren included) unless something detached itself (see `sflow.proc.orphans`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable, Iterator

from sflow.proc.stop import Step, Stopped, Stopper, poll_until

KILL_WAIT = 5.0  # seconds a group may take to be gone after KILL (KILL lands asynchronously)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_has_live(pgid: int) -> bool:
    """True while a process of group `pgid` is alive; zombies (an init that reaps late) do not count."""
    if not os.path.isdir("/proc/self"):
        return signal_group(pgid, 0)
    return any(int(fields[2]) == pgid and fields[0] not in (b"Z", b"X") for _, fields in processes())


def group_gone(pgid: int) -> bool:
    """True once no process of group `pgid` is alive; the common case (no group) costs one `killpg`."""
    return not signal_group(pgid, 0) or not group_has_live(pgid)


async def stop_group(pgid: int, grace: float) -> Stopped:
    """Stop a process group we did not start (a killed run's task): TERM, `grace` seconds, KILL."""

    def term() -> None:
        signal_group(pgid, signal.SIGTERM)
        signal_group(pgid, signal.SIGCONT)  # a stopped (frozen) process gets the TERM now

    stopper = Stopper(
        lambda: poll_until(lambda: group_gone(pgid)),
        Step("TERM", term),
        Step("KILL", lambda: signal_group(pgid, signal.SIGKILL), KILL_WAIT),
    )
    return await stopper.stop(grace)


async def stop_groups(pgids: list[int], grace: float) -> dict[int, Stopped]:
    """`stop_group` of each, all at once: {pgid: how its stop ended}."""
    ends = await asyncio.gather(*(stop_group(pgid, grace) for pgid in pgids))
    return dict(zip(pgids, ends, strict=True))


def processes(pids: Iterable[int] | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the fields of /proc/<pid>/stat after the command: state, ppid, pgrp, session, ...)
    of every process, or of `pids` (those still there)."""
    names = (e.name for e in os.scandir("/proc") if e.name.isdigit()) if pids is None else map(str, pids)
    for name in names:
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 3:
            yield int(name), fields


def own_children() -> list[int] | None:
    """The pids of this process's children, from /proc/self/task/*/children: a few small files
    instead of every process's; None where the kernel does not list children."""
    if not os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        return None
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as fh:
                pids += map(int, fh.read().split())
        except OSError:  # a thread that has just ended
            continue
    return pids
