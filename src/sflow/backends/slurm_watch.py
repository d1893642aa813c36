"""Notice when the run's Slurm allocation ends under it, and say why.

Two ways in, both through the run's one `SlurmWatcher` (the allocation rides in the poll that
also serves steps and dispatched jobs): a step that fails asks at once (`check`), so a task killed
because its allocation was cancelled is never retried on the dead job and never blamed for it;
and a subscription (`run`) covers the moments no step runs. Once the job has ended, one
`scontrol show job` tells why: the reason names the state, Slurm's reason, who cancelled it (when
accounting can tell) and which nodes failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pwd
import re

from sflow.backends.base import AllocationWatch
from sflow.slurm.commands import SlurmCommandError, SlurmResult, run_once
from sflow.slurm.watcher import JobStatus, SlurmWatcher, run_watcher

log = logging.getLogger(__name__)

POLL_INTERVAL = 10.0
SETTLE_WAIT = 5.0  # how long a COMPLETING job gets to show its final state
# States in which the allocation still holds (or will hold) its nodes.
ALIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "RESIZING", "REQUEUED"})
_FIELD_RE = re.compile(r"(?:^|\s)(\w+)=(\S*)")


def describe_end(
    job: str, backend: str, state: str, reason: str = "", by: str = "", failed_nodes: str = ""
) -> str:
    """One sentence on how an allocation ended: 'Slurm allocation 12 (backend 'c') was cancelled by alice'."""
    what = f"Slurm allocation {job} (backend '{backend}')"
    if state == "GONE":
        return f"{what} is no longer known to Slurm"
    if state == "CANCELLED":
        text = f"{what} was cancelled" + (f" by {by}" if by else "")
    elif state == "NODE_FAIL":
        text = f"{what} ended: a node failed (NODE_FAIL)"
    elif state == "TIMEOUT":
        text = f"{what} reached its time limit (TIMEOUT)"
    elif state == "PREEMPTED":
        text = f"{what} was preempted (PREEMPTED)"
    else:
        text = f"{what} ended: {state}"
    if reason and reason not in ("None", "(null)"):
        text += f", reason {reason}"
    if failed_nodes:
        text += f"; {failed_nodes}"
    return text


def job_fields(text: str) -> dict[str, str]:
    """`Key=Value` pairs of `scontrol show job -o` (first occurrence of each key)."""
    fields: dict[str, str] = {}
    for match in _FIELD_RE.finditer(text):
        fields.setdefault(match.group(1), match.group(2))
    return fields


def cancelled_by(sacct_state: str) -> str:
    """'alice (uid 1000)' from sacct's 'CANCELLED by 1000'; '' when it does not say."""
    match = re.search(r"by (\d+)", sacct_state)
    if not match:
        return ""
    uid = int(match.group(1))
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


HEALTHY_NODE_STATES = frozenset({"idle", "mix", "alloc", "comp", "resv", "plnd", "maint"})


def unhealthy_nodes(sinfo: str) -> str:
    """'node fnode2 is down (sflowtest)' from `sinfo -h -N -o "%N|%t|%E"` lines of the job's nodes."""
    bad = []
    for line in sinfo.splitlines():
        name, state, why = ([*line.split("|", 2), "", ""])[:3]
        responding = not state.strip().endswith("*")
        base = state.strip().rstrip("*~#!%$@^-").lower()
        if responding and base in HEALTHY_NODE_STATES:
            continue
        label = base if responding else f"{base} and not responding"
        why = why.strip()
        said = why and why.lower() not in ("none", "not responding")
        bad.append(f"{name.strip()} is {label}" + (f" ({why})" if said else ""))
    bad = list(dict.fromkeys(bad))
    if not bad:
        return ""
    return ("node " if len(bad) == 1 else "nodes ") + ", ".join(bad)


class SlurmJobWatch(AllocationWatch):
    """Watches the Slurm job of one allocation, through the run's `SlurmWatcher`."""

    def __init__(
        self, job_id: str, backend: str, watcher: SlurmWatcher | None = None, interval: float = POLL_INTERVAL
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.backend = backend
        self._watcher = watcher
        self.interval = interval

    @property
    def watcher(self) -> SlurmWatcher:
        """The given watcher, else the one of the run (the event loop) asking."""
        return self._watcher or run_watcher()

    async def check(self) -> str | None:
        if self.ended is not None:
            return self.ended
        status = await self.watcher.status(self.job_id)
        if status.state in ALIVE_STATES:
            return None
        await self._conclude(status)
        return self.ended

    async def run(self) -> None:
        changes: asyncio.Queue[JobStatus] = asyncio.Queue()
        subscription = self.watcher.subscribe(changes.put_nowait, interval=self.interval)
        subscription.watch([self.job_id])
        try:
            while self.ended is None:
                status = await changes.get()
                if status.state not in ALIVE_STATES:
                    await self._conclude(status)
        finally:
            subscription.close()

    async def _conclude(self, status: JobStatus) -> None:
        """The allocation has ended (or is ending): say how. COMPLETING gets a moment to become
        the state it ends in (CANCELLED, NODE_FAIL, ...)."""
        if status.state == "COMPLETING":
            with contextlib.suppress(asyncio.TimeoutError):
                ending = "COMPLETING"
                status = await self.watcher.wait_for(self.job_id, lambda s: s.state != ending, SETTLE_WAIT)
        if self.ended is not None:
            return
        state = "GONE" if status.state == "VANISHED" else status.state
        try:
            fields = {} if state == "GONE" else job_fields((await self._show()).stdout)
        except SlurmCommandError:
            fields = {}
        self._end(await self._describe(state, fields))

    async def _show(self) -> SlurmResult:
        return await run_once(["scontrol", "show", "job", "-o", self.job_id], timeout=30.0)

    async def _describe(self, state: str, fields: dict[str, str]) -> str:
        by = failed = ""
        if state == "CANCELLED":
            by = cancelled_by(await _quiet(["sacct", "-X", "-n", "-P", "-j", self.job_id, "-o", "State"]))
        nodes = fields.get("NodeList", "")
        if state in ("NODE_FAIL", "COMPLETING", "FAILED") and nodes and nodes != "(null)":
            failed = await node_health(nodes)
        return describe_end(self.job_id, self.backend, state, fields.get("Reason", ""), by, failed)


async def node_health(nodes: str) -> str:
    """What is wrong with any of `nodes` (a hostlist), as `unhealthy_nodes` says it; '' if nothing."""
    return unhealthy_nodes(await _quiet(["sinfo", "-h", "-N", "-n", nodes, "-o", "%N|%t|%E"]))


async def _quiet(argv: list[str]) -> str:
    """A best-effort query for details (sacct needs accounting): its output, or '' on any error."""
    try:
        return (await run_once(argv, timeout=10.0)).stdout
    except SlurmCommandError:
        return ""
