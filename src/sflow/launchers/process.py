"""Supervise one local process (bash, or `srun` on a cluster) as an engine attempt.

Each attempt runs in its own session, so its whole process group (grandchildren
included) can be stopped together: TERM, a grace period, then KILL. Output goes
straight to the attempt's log file; nothing is read through pipes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.engine.unit import Attempt, Outcome

LEFTOVER_GRACE = 2.0  # seconds that processes a task left behind get between TERM and KILL


@dataclass
class LaunchSpec:
    """Everything needed to start one attempt: a pure value, built by a launcher, easy to test."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)


def describe_exit(code: int) -> str:
    """'exit code 3' or 'killed by SIGKILL' for an asyncio return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class ProcessAttempt(Attempt):
    """A started process group whose end is an asyncio event, not a poll."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: LaunchSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.log_path = spec.log_path
        self.info = {"pid": proc.pid, **spec.info}
        self._outcome: asyncio.Future[Outcome] | None = None
        self._stop_deadline: float | None = None  # loop time after which the group gets KILL

    @classmethod
    async def start(cls, spec: LaunchSpec, extra_env: Mapping[str, str] | None = None) -> ProcessAttempt:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(spec.env)
        if extra_env:
            env.update(extra_env)
        with open(spec.log_path, "ab", buffering=0) as log:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(spec.cwd),
                env=env,
                start_new_session=True,
            )
        return cls(proc, spec)

    async def wait(self) -> Outcome:
        if self._outcome is None:
            self._outcome = asyncio.ensure_future(self._wait_once())
        return await asyncio.shield(self._outcome)

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        await self._reap_group()
        return Outcome(ok=code == 0, reason=describe_exit(code), exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        """TERM the whole group, give it `grace` seconds (leader and children alike), then KILL.

        A second call with a shorter grace (a second Ctrl-C) shortens the deadline.
        """
        loop = asyncio.get_running_loop()
        if self._stop_deadline is None:
            self._stop_deadline = loop.time() + grace
            _signal_group(self.proc.pid, signal.SIGTERM)
        else:
            self._stop_deadline = min(self._stop_deadline, loop.time() + grace)
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self.proc.wait()), max(0.0, self._stop_deadline - loop.time())
                )
            except asyncio.TimeoutError:
                _signal_group(self.proc.pid, signal.SIGKILL)
        await self.wait()
        if group_has_live(self.proc.pid):  # a reap still waiting on an earlier, longer deadline
            await _kill_group(self.proc.pid)

    async def _reap_group(self) -> None:
        """The leader is gone; stop whatever it left behind in its group (no orphans).

        After a natural exit, leftovers get TERM and two seconds; during a `stop` they already had
        TERM and get what is left of its grace. The common case (nothing left) costs one failed
        `killpg(pgid, 0)`.
        """
        if not _signal_group(self.proc.pid, 0) or not group_has_live(self.proc.pid):
            return
        loop = asyncio.get_running_loop()
        if self._stop_deadline is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            self._stop_deadline = loop.time() + LEFTOVER_GRACE
        delay = 0.005
        while group_has_live(self.proc.pid) and loop.time() < self._stop_deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        if group_has_live(self.proc.pid):
            await _kill_group(self.proc.pid)


async def _kill_group(pgid: int) -> None:
    """KILL a process group and return once none of it is alive (KILL lands asynchronously)."""
    _signal_group(pgid, signal.SIGKILL)
    delay = 0.001
    for _ in range(100):
        if not group_has_live(pgid):
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_has_live(pgid: int) -> bool:
    """True while a process of group `pgid` is alive; zombies (an init that reaps late) do not count."""
    if not os.path.isdir("/proc/self"):
        return _signal_group(pgid, 0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def merged_env(base: Mapping[str, str], *layers: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment: `base` (usually os.environ) with each layer on top."""
    env = dict(base)
    for layer in layers:
        if layer:
            env.update(layer)
    return env


def argv_text(argv: Sequence[str]) -> str:
    """A shell-quoted rendering of argv, for dry runs and logs."""
    import shlex

    return shlex.join(argv)
