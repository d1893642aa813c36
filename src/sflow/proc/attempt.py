"""Supervise one local process (bash, or `srun` on a cluster) as an engine attempt.

Each attempt runs in its own session, so its whole process group (grandchildren included) can
be stopped together on the one stop path (`sflow.proc.stop`): TERM, a grace, then KILL. Its
leader's exit is an asyncio event (`sflow.proc.spawn`), not a poll.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping

from sflow.engine.once import Once
from sflow.engine.unit import Attempt, Outcome
from sflow.proc.groups import KILL_WAIT, group_gone, signal_group
from sflow.proc.spawn import Child, LaunchSpec, start_child
from sflow.proc.stop import Step, Stopper, poll_until

LEFTOVER_GRACE = 2.0  # seconds that processes a task left behind get between TERM and KILL


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

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.log_path = spec.log_path
        self.info = {"pid": proc.pid, **spec.info}
        self._outcome = Once(self._wait_once)
        self._group_stop = Stopper(
            self._group_ended,
            Step("TERM", self._term_group),
            Step("KILL", lambda: signal_group(self.proc.pid, signal.SIGKILL), KILL_WAIT),
        )

    @classmethod
    async def start(cls, spec: LaunchSpec, extra_env: Mapping[str, str] | None = None) -> ProcessAttempt:
        env = dict(spec.env, **extra_env) if extra_env else spec.env
        return cls(await start_child(spec, env), spec)

    async def wait(self) -> Outcome:
        return await self._outcome()

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        await self._reap_group()
        return Outcome(ok=code == 0, reason=describe_exit(code), exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        """TERM the whole group, give it `grace` seconds (leader and children alike), then KILL.

        A second call with a shorter grace (a second Ctrl-C) shortens the deadline.
        """
        await self._group_stop.stop(grace)
        await self.wait()

    async def _reap_group(self) -> None:
        """The leader is gone; stop whatever it left behind in its group (no orphans).

        After a natural exit, leftovers get TERM and two seconds; during a `stop` they already had
        TERM and get what is left of its grace. The common case (nothing left) costs one failed
        `killpg(pgid, 0)`.
        """
        if self._group_stop.started:
            await self._group_stop.finished()
        elif not group_gone(self.proc.pid):
            await self._group_stop.stop(LEFTOVER_GRACE)

    def _term_group(self) -> None:
        signal_group(self.proc.pid, signal.SIGTERM)
        signal_group(self.proc.pid, signal.SIGCONT)  # a stopped (frozen) process gets the TERM now

    async def _group_ended(self) -> None:
        """The leader has exited and nothing of its group lives (an event, then a poll of /proc)."""
        await self.proc.wait()
        await poll_until(lambda: group_gone(self.proc.pid))
