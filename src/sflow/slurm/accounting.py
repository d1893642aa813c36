"""What Slurm's accounting (`sacct`) remembers of jobs and steps that squeue and scontrol forgot.

A step leaves squeue the moment it ends, and a job leaves scontrol after MinJobAge; only the
accounting database keeps their end states (OUT_OF_MEMORY, NODE_FAIL, TIMEOUT, ...). A cluster
without accounting answers "accounting storage is disabled": then the lookups here say None and
callers keep what they knew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sflow.slurm.commands import SlurmCommandError, SlurmResult, normalize_state, run_once

# Runs one Slurm client command once (`run_once`, or a test's fake): argv, timeout -> output.
CommandRunner = Callable[[Sequence[str], float], Awaitable[SlurmResult]]
# States a record has before its end is written (the database lags the controller a little).
UNSETTLED = frozenset({"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING"})
SETTLE_DELAYS = (0.2, 0.5, 1.0)  # seconds between asks while a step's end is not recorded yet


async def run_command(argv: Sequence[str], timeout: float) -> SlurmResult:
    """`run_once` as a `CommandRunner`."""
    return await run_once(argv, timeout=timeout)


def parse_sacct(stdout: str) -> dict[str, tuple[str, str]]:
    """`{id: (state, exit code)}` from `sacct -n -P -o JobID,State,ExitCode` lines."""
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 3 and fields[0]:
            found[fields[0]] = (normalize_state(fields[1]), fields[2])
    return found


async def sacct_states(
    ids: Sequence[str], runner: CommandRunner = run_command, timeout: float = 30.0
) -> dict[str, tuple[str, str]] | None:
    """The recorded state and exit code of each job, array element or step of `ids` that
    accounting knows (`123`, `123_4`, `123.0`); None when the cluster has no accounting."""
    jobs = sorted({i.split(".", 1)[0] for i in ids})
    argv = ["sacct", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(jobs)]
    try:
        result = await runner(argv, timeout)
    except SlurmCommandError:
        return None  # no accounting, or it does not answer: nothing more is known
    found = parse_sacct(result.stdout)
    return {i: found[i] for i in ids if i in found}


async def step_end_state(step: str, runner: CommandRunner = run_command) -> str | None:
    """The end state accounting recorded for `step` (None when it has none to say)."""
    for delay in (0.0, *SETTLE_DELAYS):
        await asyncio.sleep(delay)
        found = await sacct_states([step], runner)
        if found is None:
            return None
        state = found.get(step, ("", ""))[0]
        if state and state not in UNSETTLED:
            return state
    return None
