"""One Slurm status watcher per run: a single `squeue` per poll for every job and step it watches.

Polling every job separately (or every second regardless of load) is what makes schedulers
slow for everybody. The run's allocation (`backends.slurm_watch`), the steps of the srun
launcher and the jobs of the dispatch executor all ask this one watcher, so a poll costs one
`squeue -h -r -t all -j id1,id2,… -o "%i %T"` for all the jobs and array elements of the run,
plus, only while someone waits on steps, one `squeue --steps -j …` for the steps of theirs.

- Subscribers (`subscribe`) are told of state changes; the pace is the shortest interval any
  of them asked for, and nothing is polled while nothing is watched.
- A caller that needs an answer now (`status`, `wait_for`, `step_gone`, `steps_of`) wakes the
  watcher at once; while such callers wait, the pace quickens (0.05 s, growing to 1 s), and
  every waiter of that moment is served by the same poll.
- Jobs squeue no longer lists are looked up with `scontrol show job -o` (once each), then in
  accounting (`sacct`, where the cluster has it); a job none knows is VANISHED. While the
  controller is unreachable the watcher backs off.

There is one watcher per event loop (`run_watcher`), which is one per run: a run owns its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sflow.slurm.accounting import CommandRunner, run_command, sacct_states
from sflow.slurm.commands import FINAL_STATES, SlurmCommandError, SlurmResult, normalize_state

log = logging.getLogger(__name__)

# Slurm's final states, plus ours for a job Slurm no longer knows at all.
TERMINAL_STATES = FINAL_STATES | {"VANISHED"}
URGENT_FIRST, URGENT_MAX = 0.05, 1.0  # the pace while a caller waits for an answer


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
    """The job id to query for `job_id` (the array's id for an element `123_4`, the job of a step)."""
    return job_id.split(".", 1)[0].split("_", 1)[0]


def parse_squeue(stdout: str) -> dict[str, str]:
    """`{job_id: state}` from `squeue -h -r -o "%i %T"` lines."""
    states: dict[str, str] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            states[fields[0]] = normalize_state(fields[1])
    return states


def parse_steps(stdout: str) -> dict[str, str]:
    """`{step_id: name}` from `squeue -h --steps -o "%i|%j"` lines."""
    steps: dict[str, str] = {}
    for line in stdout.splitlines():
        step, _, name = line.strip().partition("|")
        if step:
            steps[step] = name
    return steps


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


class Subscription:
    """Jobs one subscriber follows; its listener hears each state change until the job ends."""

    def __init__(self, watcher: SlurmWatcher, listener: StatusListener, interval: float | None) -> None:
        self.watcher = watcher
        self.listener = listener
        self.interval = interval
        self.told: dict[str, str] = {}  # job id -> the state last told (absent: nothing told yet)

    @property
    def jobs(self) -> list[str]:
        return list(self.told)

    def watch(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.told.setdefault(job_id, "")
        self.watcher._changed()

    def unwatch(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.told.pop(job_id, None)

    def close(self) -> None:
        self.told.clear()
        self.watcher._subscriptions.discard(self)

    def report(self, statuses: dict[str, JobStatus]) -> None:
        """Tell the listener of each change; a job that ended is told once and left."""
        for job_id, told in list(self.told.items()):
            status = statuses.get(job_id)
            if status is None or status.state == told:
                continue
            if status.terminal:
                del self.told[job_id]
            else:
                self.told[job_id] = status.state
            try:
                self.listener(status)
            except Exception:
                log.exception("Slurm status listener failed for job %s", job_id)


@dataclass
class _Waiter:
    """A caller waiting for a poll: served by the first poll after it came (`fresh` until then),
    done once `ready()` holds after a poll; a failed poll fails it when `errors`."""

    jobs: tuple[str, ...]
    step_jobs: tuple[str, ...]
    ready: Callable[[], bool]
    future: asyncio.Future[None]
    errors: bool = True
    fresh: bool = True


class SlurmWatcher:
    """Polls the state of every job and step its subscribers and waiters care about."""

    def __init__(
        self,
        *,
        squeue: Sequence[str] = ("squeue",),
        scontrol: Sequence[str] = ("scontrol",),
        interval: float = 10.0,
        max_backoff: float = 60.0,
        command_timeout: float = 60.0,
        runner: CommandRunner = run_command,
    ) -> None:
        self.squeue = list(squeue)
        self.scontrol = list(scontrol)
        self.interval = interval  # the pace when no subscriber asks for a shorter one
        self.max_backoff = max_backoff
        self.command_timeout = command_timeout
        self.runner = runner
        self.polls = 0
        self.statuses: dict[str, JobStatus] = {}  # the last known state of every job asked about
        self.steps: dict[str, str] = {}  # step id -> name, of the jobs whose steps were last asked for
        self._subscriptions: set[Subscription] = set()
        self._waiters: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._urgent = URGENT_FIRST
        self._task: asyncio.Task[None] | None = None

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self, listener: StatusListener, *, interval: float | None = None) -> Subscription:
        """A new subscriber; `interval` (seconds) is the pace it needs, if shorter than the watcher's."""
        subscription = Subscription(self, listener, interval)
        self._subscriptions.add(subscription)
        return subscription

    # -- answers now ---------------------------------------------------------------------------

    async def status(self, job_id: str) -> JobStatus:
        """The job's state from a poll that starts after this call (raises when Slurm cannot say)."""
        await self._wait(_Waiter((job_id,), (), lambda: True, self._future()))
        return self.statuses[job_id]

    async def wait_for(
        self, job_id: str, done: Callable[[JobStatus], bool], timeout: float | None = None
    ) -> JobStatus:
        """The job's first polled state for which `done` holds (TimeoutError after `timeout`);
        a controller that does not answer is asked again, with back-off."""
        waiter = _Waiter((job_id,), (), lambda: done(self.statuses[job_id]), self._future(), errors=False)
        await asyncio.wait_for(self._wait(waiter), timeout)
        return self.statuses[job_id]

    async def steps_of(self, job_id: str) -> dict[str, str]:
        """`{step_id: name}` of the job's steps Slurm lists now."""
        await self._wait(_Waiter((), (job_id,), lambda: True, self._future()))
        return {s: n for s, n in self.steps.items() if master_id(s) == job_id}

    async def step_gone(self, step_id: str, timeout: float | None = None) -> None:
        """Return once squeue no longer lists the step (TimeoutError after `timeout`)."""
        job = master_id(step_id)
        waiter = _Waiter((), (job,), lambda: step_id not in self.steps, self._future(), errors=False)
        await asyncio.wait_for(self._wait(waiter), timeout)

    @staticmethod
    def _future() -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    async def _wait(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        self._urgent = URGENT_FIRST
        self._changed()
        try:
            await waiter.future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    # -- the poll ------------------------------------------------------------------------------

    def _changed(self) -> None:
        """Something new to watch: make sure the poll runs."""
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())

    def _waiting(self) -> list[_Waiter]:
        """Callers not answered yet (an answered one leaves the list only once its caller resumes:
        the poll must not go on for it meanwhile, nor still run when the run ends)."""
        return [w for w in self._waiters if not w.future.done()]

    def _jobs(self) -> list[str]:
        jobs = {j for s in self._subscriptions for j in s.told}
        jobs.update(j for w in self._waiting() for j in w.jobs)
        return sorted(jobs, key=_numeric)

    def _step_jobs(self) -> list[str]:
        return sorted({j for w in self._waiting() for j in w.step_jobs}, key=_numeric)

    def _delay(self, failures: int) -> float:
        """Seconds from one poll to the next: none for a caller that asked now, quick while callers
        wait, the shortest interval subscribers asked for otherwise, doubled per failed poll."""
        waiting = self._waiting()
        if any(w.fresh for w in waiting):
            return 0.0
        if waiting:
            pace = self._urgent
        else:
            asked = [s.interval for s in self._subscriptions if s.told and s.interval is not None]
            pace = min([self.interval, *asked])
        return min(pace * 2**failures, self.max_backoff) if failures else pace

    async def run(self) -> None:
        """Poll while anything is watched or awaited; return when nothing is."""
        loop = asyncio.get_running_loop()
        failures, last = 0, loop.time()
        while self._jobs() or self._step_jobs():
            self._wake.clear()
            remaining = last + self._delay(failures) - loop.time()
            if remaining > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
                continue  # woken or due: look again at what is watched and how soon
            last = loop.time()
            served = [w for w in self._waiters if not w.future.done()]
            try:
                await self.poll_once()
            except SlurmCommandError as exc:
                failures += 1
                say = log.warning if failures == 1 else log.debug  # once per outage
                say("Slurm status query failed (%s); asking again later", exc)
                self._serve(served, exc)
                continue
            failures = 0
            self._urgent = min(self._urgent * 1.5, URGENT_MAX)
            for subscription in list(self._subscriptions):
                subscription.report(self.statuses)
            self._serve(served, None)

    @staticmethod
    def _serve(waiters: list[_Waiter], error: SlurmCommandError | None) -> None:
        for waiter in waiters:
            waiter.fresh = False
            if waiter.future.done():
                continue
            if error is not None and waiter.errors:
                waiter.future.set_exception(error)
                waiter.future.exception()  # its caller may have gone meanwhile: nothing unretrieved
            elif error is None and waiter.ready():
                waiter.future.set_result(None)

    async def poll_once(self) -> None:
        """One squeue for every watched job (scontrol for those it misses), one for watched steps."""
        self.polls += 1
        jobs, step_jobs = self._jobs(), self._step_jobs()
        if jobs:
            self.statuses.update(await self._job_statuses(jobs))
        if step_jobs:
            argv = [*self.squeue, "-h", "--steps", "-o", "%i|%j", "-j", ",".join(step_jobs)]
            found = parse_steps((await self._query(argv)).stdout)
            kept = {s: n for s, n in self.steps.items() if master_id(s) not in step_jobs}
            self.steps = kept | found

    async def _job_statuses(self, watched: list[str]) -> dict[str, JobStatus]:
        masters = sorted({master_id(j) for j in watched}, key=_numeric)
        argv = [*self.squeue, "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(masters)]
        states = parse_squeue((await self._query(argv)).stdout)
        statuses = {j: JobStatus(j, states[j]) for j in watched if j in states}
        missing = sorted({master_id(j) for j in watched if j not in states}, key=_numeric)
        for master in missing:
            found = await self.scontrol_status(master)
            statuses.update((j, found[j]) for j in watched if master_id(j) == master and j in found)
        forgotten = [j for j in watched if j not in statuses]
        if forgotten:  # only accounting remembers them now, if the cluster has it
            recorded = await sacct_states(forgotten, self.runner) or {}
            for j in forgotten:
                state, code = recorded.get(j, ("", ""))
                gone = JobStatus(j, "VANISHED", reason="unknown to squeue, scontrol and sacct")
                statuses[j] = JobStatus(j, state, exit_code=code) if state else gone
        return statuses

    async def scontrol_status(self, job_id: str) -> dict[str, JobStatus]:
        """`scontrol show job -o <job_id>` parsed; empty when Slurm no longer knows the job."""
        result = await self._query([*self.scontrol, "show", "job", "-o", job_id])
        return parse_scontrol(result.stdout)

    async def _query(self, argv: list[str]) -> SlurmResult:
        """The command's output; empty when Slurm knows none of the ids asked about."""
        try:
            return await self.runner(argv, self.command_timeout)
        except SlurmCommandError as exc:
            if exc.invalid_job:
                return SlurmResult("")
            raise


def _numeric(job_id: str) -> tuple[int, str]:
    return (int(job_id), "") if job_id.isdigit() else (0, job_id)


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], SlurmWatcher]] = (
    weakref.WeakKeyDictionary()
)


def run_watcher(squeue: Sequence[str] = ("squeue",), scontrol: Sequence[str] = ("scontrol",)) -> SlurmWatcher:
    """The watcher of the running event loop (one per run) for these Slurm commands."""
    by_command = _WATCHERS.setdefault(asyncio.get_running_loop(), {})
    key = (*squeue, "\0", *scontrol)
    if key not in by_command:
        by_command[key] = SlurmWatcher(squeue=squeue, scontrol=scontrol)
    return by_command[key]
