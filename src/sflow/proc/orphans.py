"""Processes a task detached (`setsid`, a double fork): adopted as their subreaper, stopped at the end.

For a command-line run only: a library must not change its host process.
"""

from __future__ import annotations

import contextlib
import os
import signal

from sflow.proc.groups import own_children, processes
from sflow.proc.spawn import LEADERS
from sflow.proc.stop import Step, Stopper, poll_until

ADOPTED_KILL_WAIT = 30.0  # seconds adopted processes may take to be gone after KILL (they die as adopted)

_adopting = False  # whether this process is the subreaper of what tasks leave behind


def adopt_orphans() -> bool:
    """Become the subreaper of our descendants (Linux): a process a task detaches (`setsid`,
    a double fork) is re-parented to us, not to init, once its parent exits, so the run can
    stop it at its end. For a command-line run only: a library must not change its host."""
    global _adopting
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def adopted() -> list[tuple[int, bool]]:
    """(pid, is_zombie) of the processes re-parented to us: our children in another session that
    are no attempt's own process. Processes we start ourselves (Slurm commands) stay in ours."""
    me, session = os.getpid(), os.getsid(0)
    found = []
    for pid, fields in processes(own_children()):
        if int(fields[1]) == me and int(fields[3]) != session and pid not in LEADERS:
            found.append((pid, fields[0] == b"Z"))
    return found


async def stop_adopted(grace: float) -> list[int]:
    """Stop every process tasks left behind and we adopted: TERM, `grace` seconds, KILL; reap them.

    Their own children are adopted in turn as they die and get the signal of the moment. The pids
    of those that were still running are returned.
    """
    if not _adopting:
        return []
    stopped: list[int] = []
    current: list[int] = [signal.SIGTERM]

    def send(sig: int) -> None:
        current[0] = sig
        for pid, zombie in adopted():
            if not zombie:
                _signal(pid, sig, stopped)

    def none_left() -> bool:
        """Reap the dead, signal newcomers; True once nothing is adopted any more."""
        found = adopted()
        for pid, zombie in found:
            if zombie:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            elif pid not in stopped or current[0] == signal.SIGKILL:
                _signal(pid, current[0], stopped)
        return not found

    stopper = Stopper(
        lambda: poll_until(none_left, first=0.01),
        Step("TERM", lambda: send(signal.SIGTERM)),
        Step("KILL", lambda: send(signal.SIGKILL), ADOPTED_KILL_WAIT),
    )
    if adopted():
        await stopper.stop(grace)
    return stopped


def _signal(pid: int, sig: int, stopped: list[int]) -> None:
    if pid not in stopped:
        stopped.append(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
        os.kill(pid, signal.SIGCONT)  # a stopped process gets its TERM now
