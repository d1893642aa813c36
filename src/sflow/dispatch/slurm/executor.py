"""The `slurm` executor: each call is a batch job (or an element of a job array).

Default path per call: `sbatch --parsable --job-name <prefix>-<name> --output <log>
[resources] --wrap "exec <python> -m sflow.dispatch.worker"`, with the payload and the run's
secret in the environment of the sbatch process (Slurm exports it to the job). Several
calls with the same resources submitted together become ONE job array per
`max_array_size` items; each element runs the item at its `SLURM_ARRAY_TASK_ID`.

Outcomes arrive as signed callbacks (or, when those are lost, as result files). The run's
`SlurmWatcher` polls all live jobs with a single squeue per interval; a job that reaches a
terminal state without having delivered a result fails its call with a `DispatchJobError`
naming the job, its state and its log. `cancel`/`aclose` scancel in one batched call.

Each sbatch carries a unique `--comment` (`sflow.slurm.submit`): a job whose answer was
lost is adopted, and one created by an sbatch cancelled meanwhile (Ctrl-C during
`submit_many`, `aclose` while a submission waits for its answer) is scancelled. The comment
is in the flow's journal before sbatch runs: `sflow cancel` finds the job of a flow killed
while sbatch ran.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sflow.dispatch.callback import CallbackServer
from sflow.dispatch.errors import DispatchSlurmError
from sflow.dispatch.executor import Call, Handle
from sflow.dispatch.options import parse_options, resolve_callable
from sflow.dispatch.remote import RemoteExecutor, RemoteOptions
from sflow.dispatch.slurm import argv as slurm_argv
from sflow.dispatch.subprocess import default_worker_command
from sflow.schema.durations import seconds_to_slurm_time
from sflow.slurm.commands import (
    RETRY_QUERY,
    RUNNING_STATES,
    SlurmCommandError,
    run_slurm,
)
from sflow.slurm.journal import JOB, SlurmJournal
from sflow.slurm.submit import TaggedSubmission
from sflow.slurm.watcher import JobStatus, Subscription, master_id, run_watcher

log = logging.getLogger(__name__)

TIME_LIMIT_MARGIN = 60.0  # seconds a job's derived time limit exceeds its call's timeout


@dataclass
class SlurmOptions(RemoteOptions):
    """`executor_config` of the slurm executor (plus every `RemoteOptions` key)."""

    submit: Callable[..., Any] | None = None  # custom submit(payload, frame, config) -> job id | handle
    command: str | list[str] | None = None  # default: this interpreter -m sflow.dispatch.worker
    sbatch: list[str] = field(default_factory=lambda: ["sbatch", "--parsable"])
    scancel: list[str] = field(default_factory=lambda: ["scancel"])
    squeue: list[str] = field(default_factory=lambda: ["squeue"])
    scontrol: list[str] = field(default_factory=lambda: ["scontrol"])
    job_name_prefix: str = "sflow"
    partition: str | None = None
    account: str | None = None
    time: str | int | float | None = None  # Slurm's --time: "1:30:00", "90s", or a number of minutes
    nodes: int | str | None = None
    cpus_per_task: int | None = None
    mem: str | int | None = None
    gpus: int | str | None = None
    extra_args: list[str] = field(default_factory=list)
    poll_interval: float = 2.0  # seconds between the shared status queries
    max_concurrent_submissions: int = 8  # sbatch processes at once
    max_array_size: int = 1000  # elements per job array (keep <= the cluster's MaxArraySize - 1)
    min_array_items: int = 2  # submit_many groups this large become job arrays
    submit_attempts: int = 5  # sbatch/scancel attempts on transient controller errors
    command_timeout: float = 60.0  # seconds before a Slurm client command counts as hung

    def __post_init__(self) -> None:
        super().__post_init__()
        self.submit = resolve_callable(self.submit, "slurm executor: 'submit'")
        if self.poll_interval < 0.05 or self.max_concurrent_submissions < 1 or self.max_array_size < 1:
            raise ValueError("poll_interval must be >= 0.05; max_concurrent_submissions, max_array_size >= 1")
        if self.time is not None:
            slurm_argv.format_time(self.time)

    def default_resources(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in slurm_argv.RESOURCE_KEYS if getattr(self, k)}


@dataclass
class SubmitPayload:
    """What a custom `submit` callable gets as `payload`: everything the job needs.

    The job must run `command` with `env` in its environment (that is how the worker finds
    its payload and secret). `argv` is the sbatch command sflow would have run.
    """

    env: dict[str, str]
    command: str
    argv: list[str]
    job_name: str
    log_path: str
    resources: dict[str, Any]


@dataclass
class SubmitFrame:
    """What a custom `submit` callable gets as `frame`: the call being submitted."""

    run_id: str
    call_id: str
    call: Call
    handle: Handle


class SlurmExecutor(RemoteExecutor):
    """Runs calls as Slurm batch jobs and job arrays."""

    name = "slurm"
    resource_keys = slurm_argv.RESOURCE_KEYS

    def __init__(
        self, config: Mapping[str, Any] | SlurmOptions | None = None, *, server: CallbackServer | None = None
    ) -> None:
        options = parse_options(SlurmOptions, config, "slurm executor")
        super().__init__(options, server=server)
        self.options: SlurmOptions = options
        self.raw_config = dict(config) if isinstance(config, Mapping) else {}
        self.wrap = slurm_argv.wrap_command(options.command or default_worker_command())
        self._submit_slots = asyncio.Semaphore(options.max_concurrent_submissions)
        self._live_slots = asyncio.Semaphore(options.max_concurrent) if options.max_concurrent else None
        self._jobs: dict[str, Handle] = {}  # job or array element id -> handle
        self._arrays: dict[str, list[Handle]] = {}  # array job id -> its handles
        self._custom: dict[str, Any] = {}  # call id -> object returned by a custom submit
        self._no_job_id: dict[str, str] = {}  # call id -> log template, custom submits without a job id
        self._signalled: dict[str, str] = {}  # call id -> signal the worker reported
        self.submitted: list[str] = []  # job ids in submission order (arrays once)
        self._status: Subscription | None = None  # the jobs this executor follows in the run's watcher
        self.journal: SlurmJournal | None = None  # a flow's run journal: `sflow cancel RUN` finds the jobs

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> None:
        parse_options(SlurmOptions, config, "slurm executor")

    async def _start(self) -> None:
        await super()._start()
        watcher = run_watcher(self.options.squeue, self.options.scontrol)
        self._status = watcher.subscribe(self._on_status, interval=self.options.poll_interval)

    # -- submission ----------------------------------------------------------------------
    async def _launch(self, handles: list[Handle]) -> None:
        custom = self.options.submit is not None  # a custom submitter gets one call at a time
        groups = [[h] for h in handles] if custom else self._plan(handles)
        await asyncio.gather(*(self._submit_group(group) for group in groups))

    def _plan(self, handles: list[Handle]) -> list[list[Handle]]:
        """Same-resource calls, when there are enough of them, become arrays of `max_array_size`."""
        by_resources: dict[str, list[Handle]] = {}
        for handle in handles:
            key = json.dumps(self.resources_for(handle.call), sort_keys=True, default=str)
            by_resources.setdefault(key, []).append(handle)
        groups: list[list[Handle]] = []
        size = self.options.max_array_size
        for same in by_resources.values():
            if len(same) < self.options.min_array_items:
                groups.extend([h] for h in same)
            else:
                groups.extend(same[i : i + size] for i in range(0, len(same), size))
        return groups

    async def _submit_group(self, group: list[Handle]) -> None:
        try:
            if self.options.submit is not None:
                await self._submit_custom(group[0])
            elif len(group) > 1:
                await self._submit_array(group)
            elif self._live_slots is not None:
                self.spawn(self._submit_gated(group[0]))
            else:
                await self._submit_single(group[0])
        except Exception as exc:
            log.warning("slurm executor: submitting %s failed: %s", group[0].name, exc)
            for handle in group:
                handle.set_exception(exc)

    async def _submit_gated(self, handle: Handle) -> None:
        assert self._live_slots is not None
        await self._live_slots.acquire()
        handle.add_done_callback(lambda _h: self._live_slots.release() if self._live_slots else None)
        if handle.done():
            return
        try:
            await self._submit_single(handle)
        except Exception as exc:
            handle.set_exception(exc)

    def resources_for(self, call: Call) -> dict[str, Any]:
        """Executor defaults overlaid with the call's resources; `timeout` (seconds) bounds `time`.

        The derived time limit is `TIME_LIMIT_MARGIN` longer than the timeout: the caller's timer
        starts once the job is seen running, a little after Slurm's clock did, and it is the one
        meant to fire (a `DispatchTimeout` naming the timeout, not a TIMEOUT job error).
        """
        merged = slurm_argv.merge_resources(self.options.default_resources(), call.resources)
        if "time" not in merged and call.timeout is not None:
            merged["time"] = seconds_to_slurm_time(call.timeout + TIME_LIMIT_MARGIN)
        return merged

    def sbatch_argv(self, handles: Sequence[Handle]) -> tuple[list[str], str, str]:
        """(argv, job name, log path template) for a job running `handles` (an array if several)."""
        first = handles[0]
        name = slurm_argv.job_name(self.options.job_name_prefix, first.name)
        pattern = "%A_%a" if len(handles) > 1 else "%j"
        log_template = str(self.run_dir / "logs" / f"{name}-{pattern}.log")
        array = slurm_argv.array_spec(len(handles), self.options.max_concurrent) if len(handles) > 1 else None
        argv = slurm_argv.build_sbatch_argv(
            self.options.sbatch,
            name=name,
            output=log_template,
            command=self.wrap,
            resources=self.resources_for(first.call),
            array=array,
            comment=f"sflow:{self.run_id}:{first.call_id}",
        )
        return argv, name, log_template

    async def _submit_single(self, handle: Handle) -> None:
        argv, name, log_template = self.sbatch_argv([handle])
        job_id = await self._sbatch(argv, await self.worker_env([handle]), name)
        await self._register([(job_id, handle)], log_template)

    async def _submit_array(self, handles: list[Handle]) -> None:
        argv, name, log_template = self.sbatch_argv(handles)
        array_id = await self._sbatch(argv, await self.worker_env(handles), name)
        self._arrays[array_id] = handles
        await self._register([(f"{array_id}_{i}", h) for i, h in enumerate(handles)], log_template)

    async def _sbatch(self, argv: list[str], env: Mapping[str, str], name: str) -> str:
        tag = next(a for a in argv if a.startswith("--comment=")).partition("=")[2]
        submission = self.tagged(name, tag)
        async with self._submit_slots:
            result = await submission.submit(argv, env={**os.environ, **env})
        job_id = slurm_argv.parse_job_id(result.stdout)
        self._submitted(job_id, name, tag)
        return job_id

    def _submitted(self, job_id: str, name: str, tag: str | None = None) -> None:
        """A job exists: remember it, and journal it before anything else can happen to this run."""
        self.submitted.append(job_id)
        if self.journal is not None:
            self.journal.add(JOB, job_id, name=name, executor_run=self.run_id, tag=tag)

    def tagged(self, name: str, tag: str) -> TaggedSubmission:
        """How this executor's sbatch finds a job again by its comment (see `sflow.slurm.submit`)."""
        return TaggedSubmission(
            name,
            tag,
            squeue=self.options.squeue,
            scancel=self.options.scancel,
            timeout=self.options.command_timeout,
            attempts=self.options.submit_attempts,
            error_type=DispatchSlurmError,
            journal=self.journal,
        )

    async def _submit_custom(self, handle: Handle) -> None:
        argv, name, log_template = self.sbatch_argv([handle])
        env = await self.worker_env([handle])
        submit_payload = SubmitPayload(
            env, self.wrap, argv, name, log_template, self.resources_for(handle.call)
        )
        frame = SubmitFrame(self.run_id, handle.call_id, handle.call, handle)
        submit = self.options.submit
        assert submit is not None
        if inspect.iscoroutinefunction(submit):
            returned = await submit(submit_payload, frame, self.raw_config)
        else:  # a sync submitter (e.g. pyslurm) may block: keep it off the event loop
            returned = await asyncio.to_thread(submit, submit_payload, frame, self.raw_config)
        if inspect.isawaitable(returned):
            returned = await returned
        job_id = returned if isinstance(returned, (str, int)) else getattr(returned, "job_id", None)
        if returned is not None and not isinstance(returned, (str, int)):
            self._custom[handle.call_id] = returned
        if job_id is not None and str(job_id).strip():
            self._submitted(str(job_id).strip(), name)
            await self._register([(str(job_id).strip(), handle)], log_template)
        elif handle.done():
            await self._terminate([handle])
        else:  # no squeue can follow it: the watchdog (result file, heartbeats) does
            self._no_job_id[handle.call_id] = log_template
            handle.add_done_callback(self._forget_no_job_id)

    async def _register(self, jobs: list[tuple[str, Handle]], log_template: str) -> None:
        """Record submitted jobs and watch them; scancel at once those cancelled meanwhile."""
        stale: list[str] = []
        for job_id, handle in jobs:
            handle.job_id = job_id
            handle.log_path = slurm_argv.log_path_for(log_template, job_id)
            if handle.done():  # cancelled or timed out while sbatch ran
                stale.append(job_id)
                continue
            self._jobs[job_id] = handle
            if self._status is not None:
                self._status.watch([job_id])
            handle.add_done_callback(functools.partial(self._forget_job, job_id))
        if stale:
            await self._scancel(self._collapse_arrays(stale))

    def _forget_job(self, job_id: str, _handle: Handle) -> None:
        self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        if self._status is not None:
            self._status.unwatch([job_id])

    # -- status --------------------------------------------------------------------------
    def _on_status(self, status: JobStatus) -> None:
        handle = self._jobs.get(status.job_id)
        if handle is None or handle.done():
            return
        if status.state in RUNNING_STATES:
            handle.mark_started()  # the job holds its node: the call's timeout counts from here
        if status.terminal:
            self._jobs.pop(status.job_id, None)
            detail = (
                f"worker received {self._signalled[handle.call_id]}"
                if handle.call_id in self._signalled
                else ""
            )
            self.spawn(
                self.job_ended(
                    handle, status.state, detail, handle.log_path, lambda: self._describe(status.job_id)
                )
            )

    async def _describe(self, job_id: str) -> str:
        if self._status is None:
            return ""
        try:
            found = await self._status.watcher.scontrol_status(master_id(job_id))
        except SlurmCommandError:
            return ""
        status = found.get(job_id)
        return status.describe() if status else ""

    def _forget_no_job_id(self, handle: Handle) -> None:
        self._no_job_id.pop(handle.call_id, None)

    def unwatched(self, handle: Handle) -> bool:
        return handle.call_id in self._no_job_id

    def log_hint(self, handle: Handle) -> str | None:
        template = self._no_job_id.get(handle.call_id)
        return f"{template} (as suggested to the custom submit; %j is the job id)" if template else None

    def worker_cancelled(self, handle: Handle, reason: str) -> None:
        self._signalled[handle.call_id] = reason
        if handle.job_id is None:  # custom submit without a job id: nothing else will tell us
            self.spawn(self.job_ended(handle, "CANCELLED", f"worker received {reason}"))

    # -- cancellation --------------------------------------------------------------------
    async def _terminate(self, handles: list[Handle]) -> None:
        ids: list[str] = []
        for handle in handles:
            custom = self._custom.pop(handle.call_id, None)
            if custom is not None and callable(getattr(custom, "cancel", None)):
                await _maybe_await(custom.cancel())
            elif handle.job_id:
                ids.append(handle.job_id)
        await self._scancel(self._collapse_arrays(ids))

    def _collapse_arrays(self, ids: list[str]) -> list[str]:
        """Element ids of arrays none of whose calls is still wanted become the array id."""
        out: list[str] = []
        whole: set[str] = set()
        for job_id in ids:
            master = master_id(job_id)
            if master in self._arrays and all(h.done() for h in self._arrays[master]):
                if master not in whole:
                    whole.add(master)
                    out.append(master)
            else:
                out.append(job_id)
        return out

    async def _scancel(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            for job_id in chunk:
                self._forget(job_id)
            try:
                await run_slurm(
                    [*self.options.scancel, *chunk],
                    retry=RETRY_QUERY,
                    attempts=self.options.submit_attempts,
                    timeout=self.options.command_timeout,
                    error_type=DispatchSlurmError,
                )
            except SlurmCommandError as exc:
                log.warning("scancel %s failed: %s", " ".join(chunk), exc)

    async def _close(self) -> None:
        leftovers = list(self._jobs)
        if leftovers:
            await self._scancel(self._collapse_arrays(leftovers))
        if self._status is not None:
            self._status.close()
        await super()._close()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
