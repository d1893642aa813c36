"""One shared Slurm status watcher: a single `squeue` per poll for all the jobs it watches.

Polling every job separately (or every second regardless of load) is what makes schedulers
slow for everybody. The watcher asks `squeue -h -r -t all -j id1,id2,… -o "%i %T"` once per
interval for every live job and array of the executor, falls back to `scontrol show job -o`
for jobs squeue no longer lists, backs off while the controller is unreachable, and calls
back only on state changes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sflow.slurm.commands import FINAL_STATES, SlurmCommandError, normalize_state, run_once

log = logging.getLogger(__name__)

# Slurm's final states, plus ours for a job Slurm no longer knows at all.
TERMINAL_STATES = FINAL_STATES | {"VANISHED"}


@dataclass(frozen=True)
class JobStatus:
    """State of one job or array element (`123` or `123_4`)."""

    job_id: str
    state: str
    exit_code: str = ""
    reason: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def describe(self) -> str:
        parts = [
            describe_exit_code(self.exit_code) if self.exit_code else "",
            f"reason {self.reason}" if self.reason else "",
        ]
        return ", ".join(p for p in parts if p and not p.endswith(" None"))


def describe_exit_code(exit_code: str) -> str:
    """Slurm's `ExitCode=<code>:<signal>` in words: a signal that ended the job is named
    ('killed by SIGABRT (ExitCode 0:6)'); anything else stays 'exit code 7:0'."""
    _, _, number = exit_code.partition(":")
    if number.isdigit() and int(number):
        try:
            return f"killed by {signal.Signals(int(number)).name} (ExitCode {exit_code})"
        except ValueError:
            pass
    return f"exit code {exit_code}"


def master_id(job_id: str) -> str:
    """The job id to query for `job_id` (the array's id for an element `123_4`)."""
    return job_id.split("_", 1)[0]


def parse_squeue(stdout: str) -> dict[str, str]:
    """`{job_id: state}` from `squeue -h -r -o "%i %T"` lines."""
    states: dict[str, str] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            states[fields[0]] = normalize_state(fields[1])
    return states


def expand_indices(spec: str) -> list[int]:
    """Array indices of `1,3,5-7%2` → [1, 3, 5, 6, 7]."""
    indices: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        if "-" in part:
            lo, _, hi = part.partition("-")
            indices.extend(range(int(lo), int(hi.split(":")[0]) + 1))
        elif part.strip():
            indices.append(int(part))
    return indices


def parse_scontrol(stdout: str) -> dict[str, JobStatus]:
    """`{job_id: JobStatus}` from `scontrol show job -o` (one job per line, `Key=Value` pairs)."""
    found: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        fields: dict[str, str] = {m.group(1): m.group(2) for m in re.finditer(r"(\w+)=(\S*)", line)}
        if "JobId" not in fields:
            continue
        state = normalize_state(fields.get("JobState", ""))
        extra = {"exit_code": fields.get("ExitCode", ""), "reason": fields.get("Reason", "")}
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array and task:
            for index in expand_indices(task):
                found[f"{array}_{index}"] = JobStatus(f"{array}_{index}", state, **extra)
        else:
            found[fields["JobId"]] = JobStatus(fields["JobId"], state, **extra)
    return found


StatusListener = Callable[[JobStatus], None]


class SlurmWatcher:
    """Polls the state of watched jobs; tells `listener` about every state change."""

    def __init__(
        self,
        listener: StatusListener,
        *,
        squeue: Sequence[str] = ("squeue",),
        scontrol: Sequence[str] = ("scontrol",),
        interval: float = 2.0,
        max_backoff: float = 60.0,
        command_timeout: float = 60.0,
        error_type: type[SlurmCommandError] = SlurmCommandError,
    ) -> None:
        self.listener = listener
        self.error_type = error_type  # what a failed squeue or scontrol raises (a caller's subclass)
        self.squeue = list(squeue)
        self.scontrol = list(scontrol)
        self.interval = interval
        self.max_backoff = max_backoff
        self.command_timeout = command_timeout
        self.polls = 0
        self._known: dict[str, str] = {}  # job id -> last reported state
        self._wake = asyncio.Event()

    def watch(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self._known.setdefault(job_id, "SUBMITTED")
        self._wake.set()

    def unwatch(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self._known.pop(job_id, None)

    @property
    def watched(self) -> list[str]:
        return list(self._known)

    async def run(self) -> None:
        """Poll forever (cancel to stop); idle without any call while nothing is watched."""
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            if not self._known:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                statuses = await self.poll_once()
            except SlurmCommandError as exc:
                delay = min(delay * 2, self.max_backoff)
                log.warning("Slurm status query failed (%s); next try in %.0f s", exc, delay)
                continue
            delay = self.interval
            self._report(statuses)

    async def poll_once(self) -> dict[str, JobStatus]:
        """Statuses of all watched jobs: one squeue call, scontrol for the ones it misses."""
        self.polls += 1
        watched = list(self._known)
        masters = sorted({master_id(j) for j in watched}, key=_numeric)
        states = await self._squeue(masters)
        statuses = {j: JobStatus(j, states[j]) for j in watched if j in states}
        missing = sorted({master_id(j) for j in watched if j not in states}, key=_numeric)
        for master in missing:
            found = await self.scontrol_status(master)
            for j in watched:
                if master_id(j) == master and j not in statuses:
                    statuses[j] = found.get(j) or JobStatus(
                        j, "VANISHED", reason="unknown to squeue and scontrol"
                    )
        return statuses

    async def scontrol_status(self, job_id: str) -> dict[str, JobStatus]:
        """`scontrol show job -o <job_id>` parsed; empty when Slurm no longer knows the job."""
        try:
            result = await run_once(
                [*self.scontrol, "show", "job", "-o", job_id],
                timeout=self.command_timeout,
                error_type=self.error_type,
            )
        except SlurmCommandError as exc:
            if exc.invalid_job:
                return {}
            raise
        return parse_scontrol(result.stdout)

    async def _squeue(self, masters: list[str]) -> dict[str, str]:
        argv = [*self.squeue, "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(masters)]
        try:
            result = await run_once(argv, timeout=self.command_timeout, error_type=self.error_type)
        except SlurmCommandError as exc:
            if exc.invalid_job:  # every listed job has aged out
                return {}
            raise
        return parse_squeue(result.stdout)

    def _report(self, statuses: dict[str, JobStatus]) -> None:
        for job_id, status in statuses.items():
            if job_id not in self._known or self._known[job_id] == status.state:
                continue
            self._known[job_id] = status.state
            if status.terminal:
                self._known.pop(job_id, None)
            try:
                self.listener(status)
            except Exception:
                log.exception("Slurm status listener failed for job %s", job_id)


def _numeric(job_id: str) -> tuple[int, str]:
    return (int(job_id), "") if job_id.isdigit() else (0, job_id)
