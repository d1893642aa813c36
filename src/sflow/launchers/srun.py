"""The `srun` operator: one attempt of a task is one job step inside the backend's allocation.

Decisions, and why:
- Placement is ours, binding is Slurm's. `--nodelist`/`-N` pin the step to the nodes our Placer
  chose; a task that asked for GPUs gets `--gres=gpu:G` and Slurm picks *which* GPUs, sets
  CUDA_VISIBLE_DEVICES (and, on real clusters, the device cgroup). We never set it ourselves.
- Sharing follows the Placer: nodes are shared, GPUs are not. A CPU-only step gets `--overlap`
  so concurrent steps share the allocation's CPUs (without it the second step of a node waits
  for "Requested nodes are busy"). A GPU step gets `--exact` and no `--overlap`: in Slurm 22.05
  an overlapping step also shares GRES, so two 1-GPU steps would both get GPU 0. `--exact` makes
  a GPU step hold only the CPUs it asks for (one per task by default), so concurrent GPU steps on
  a node need one allocated CPU each (e.g. `--exclusive` or `--cpus-per-gpu` in `extra_args`).
  An operator's own `exclusive`/`overlap` wins.
- The task's environment goes through srun's environment (`--export=ALL` by default), never
  argv. srun *input* variables inherited from an enclosing sbatch (SLURM_NTASKS,
  SLURM_GPUS_PER_NODE, ...) are dropped: the operator alone shapes the step.
- The step id is recorded by the step itself: task 0 writes `$SLURM_JOB_ID.$SLURM_STEP_ID` to a
  file next to the attempt's log before it runs `bash <script>`. That works for steps that fail
  in milliseconds (too fast for squeue) and costs the controller nothing. Every rank then records
  its exit status beside it, so a node that died after the other ranks exited 0 (srun then exits 0
  too) is a failure, not a success (`sflow.launchers.srun_verdict`).
- Stop: `scancel --signal=TERM <job>.<step>` lets the task clean up (TERM to srun itself makes
  srun SIGKILL the step at once); after the grace, TERM to srun (it kills the step) plus
  `scancel <job>.<step>`, and we return only when Slurm no longer lists the step (as the run's
  one Slurm watcher sees it: a hundred steps stopping share one `squeue --steps` per poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sflow.backends.base import JOB_PLACEHOLDER, AllocationWatch
from sflow.engine.once import Once
from sflow.engine.unit import Attempt, Outcome
from sflow.launchers.base import LaunchContext, Launcher, register_launcher
from sflow.launchers.srun_verdict import (
    parse_banner,
    passing_start_error,
    read_rank_records,
    recorded,
    step_verdict,
)
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.groups import signal_group
from sflow.proc.spawn import Child, LaunchSpec, merged_env
from sflow.proc.stop import Step, Stopper
from sflow.record.tail import read_end
from sflow.slurm.accounting import step_end_state
from sflow.slurm.commands import SlurmCommandError, scancel
from sflow.slurm.flags import slurm_time, split_args
from sflow.slurm.journal import STEP, SlurmJournal
from sflow.slurm.watcher import run_watcher

STEP_FILE_ENV = "SFLOW_SLURM_STEP_FILE"
# The schema's runtime variables of a step, from Slurm's own (SFLOW_BACKEND_* describe the job).
STEP_VARIABLES = (
    ("SFLOW_BACKEND_JOB_ID", "SLURM_JOB_ID"),
    ("SFLOW_BACKEND_NODELIST", "SLURM_JOB_NODELIST"),
    ("SFLOW_BACKEND_NUM_NODES", "SLURM_JOB_NUM_NODES"),
    ("SFLOW_BACKEND_STEP_ID", "SLURM_STEP_ID"),
    ("SFLOW_TASK_NODE_NAME", "SLURMD_NODENAME"),
    ("SFLOW_TASK_NODE_INDEX", "SLURM_NODEID"),
    ("SFLOW_TASK_PROCESS_ID", "SLURM_PROCID"),
    ("SFLOW_TASK_LOCAL_PROCESS_ID", "SLURM_LOCALID"),
    ("SFLOW_TASK_NUM_PROCESSES", "SLURM_NTASKS"),
)
# Every rank sets those (keeping sflow's value where Slurm sets none); rank 0 records
# "<job>.<step>"; every rank runs `bash <script>` ($0 is the script path), records
# "<status> <ranks>" in `<step file>.ranks/<rank>`, and ends as its script did. Slurm signals every
# process of a step (scancel --signal), so the wrapper catches what would end it and lets its script
# decide (a caught signal is the default again in the script); a script killed by a signal is
# re-raised, so srun still reports "task 1: Killed".
_RELAYED = "HUP INT QUIT ALRM TERM USR1 USR2 XCPU"
STEP_RECORDER = (
    "export " + " ".join(f'{ours}="${{{theirs}:-${{{ours}:-}}}}"' for ours, theirs in STEP_VARIABLES) + "; "
    f"trap : {_RELAYED}; "
    "f=${" + STEP_FILE_ENV + ":-/dev/null}; r=${SLURM_PROCID:-0}; "
    '[ "$r" != 0 ] || { echo "$SLURM_JOB_ID.$SLURM_STEP_ID" > "$f"; } 2>/dev/null; '
    'bash "$0"; s=$?; { echo "$s ${SLURM_STEP_NUM_TASKS:-}" > "$f.ranks/$r"; } 2>/dev/null; '
    f'[ "$s" -le 128 ] || {{ trap - {_RELAYED}; kill -$((s - 128)) $$; }} 2>/dev/null; exit "$s"'
)
# srun reads these as defaults for the step; inside sbatch they describe the *job*, not our step.
SRUN_INPUT_VARS = frozenset(
    f"SLURM_{name}"
    for name in (  # noqa: SIM905 - a word list reads better than 30 quoted strings
        "NTASKS NPROCS NNODES NTASKS_PER_NODE NTASKS_PER_SOCKET NTASKS_PER_CORE NTASKS_PER_GPU "
        "CPUS_PER_TASK CPUS_PER_GPU GPUS GPUS_PER_NODE GPUS_PER_TASK GPUS_PER_SOCKET MEM_PER_CPU "
        "MEM_PER_GPU MEM_PER_NODE DISTRIBUTION EXCLUSIVE OVERLAP EXACT GRES TRES_PER_TASK CPU_BIND "
        "GPU_BIND HINT EXPORT_ENV TIMELIMIT JOB_NAME UNBUFFEREDIO LABELIO"
    ).split()
)
STOP_KILL_WAIT = 15.0  # after the grace: how long srun may take to tear the step down before KILL
# Seconds between sruns of a step Slurm could not start for a passing reason: about 4 minutes in all.
START_AGAIN_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0)
STEP_GONE_WAIT = 30.0


def _op(ctx: LaunchContext, name: str) -> Any:
    """An operator field (models are still evolving: absent means None)."""
    return getattr(ctx.operator, name, None)


def step_gpus(ctx: LaunchContext) -> int:
    """GPUs per node the task asked for (our Placer counted them; Slurm binds them)."""
    return len(ctx.placement.gpus[0]) if ctx.placement.gpus else 0


def asks_for_gpus(ctx: LaunchContext) -> bool:
    return bool(step_gpus(ctx) or _op(ctx, "gres") or _op(ctx, "gpus") or _op(ctx, "gpus_per_task"))


def step_nodes(ctx: LaunchContext) -> list[str]:
    """The step's nodes: an operator's own `nodelist`, else those placement chose."""
    return list(_op(ctx, "nodelist") or ()) or ctx.placement.node_names


def step_ranks(ctx: LaunchContext) -> int:
    """How many ranks (srun tasks) the step runs."""
    n = len(step_nodes(ctx))
    ntasks, per_node = _op(ctx, "ntasks"), _op(ctx, "ntasks_per_node")
    return int(ntasks) if ntasks else n * int(per_node) if per_node else n


def shape_args(ctx: LaunchContext) -> list[str]:
    """Nodes, tasks, CPUs, memory, time and the other Slurm fields of the step.

    An operator's own `nodelist` takes the place of the nodes placement chose.
    """
    nodes = step_nodes(ctx)
    per_node = _op(ctx, "ntasks_per_node")
    args = ["--nodelist", ",".join(nodes), "-N", str(len(nodes)), "--ntasks", str(step_ranks(ctx))]
    if per_node:
        args += ["--ntasks-per-node", str(per_node)]
    for flag, field in STEP_FIELDS:
        if _op(ctx, field) not in (None, ""):
            args += [flag, str(_op(ctx, field))]
    if _op(ctx, "time") not in (None, ""):
        args += ["--time", slurm_time(_op(ctx, "time"))]
    return args


# operator fields passed to srun as they are
STEP_FIELDS = (
    ("--cpus-per-task", "cpus_per_task"),
    ("--mem", "mem"),
    ("--mem-per-cpu", "mem_per_cpu"),
    ("--partition", "partition"),
    ("--account", "account"),
    ("--qos", "qos"),
    ("--reservation", "reservation"),
    ("--constraint", "constraint"),
    ("--chdir", "chdir"),
    ("--wait", "wait"),
)


def gpu_args(ctx: LaunchContext) -> list[str]:
    """The operator's own GPU flags, else `--gres=gpu:G` for the GPUs the task asked for."""
    own = [
        f"{flag}={_op(ctx, field)}"
        for flag, field in (("--gres", "gres"), ("--gpus", "gpus"), ("--gpus-per-task", "gpus_per_task"))
        if _op(ctx, field)
    ]
    if own:
        return own
    gpus = step_gpus(ctx)
    return [f"--gres=gpu:{gpus}"] if gpus else []


def sharing_args(ctx: LaunchContext) -> list[str]:
    """`--overlap` for CPU steps, `--exact` for GPU steps; the operator's explicit choice wins."""
    if _op(ctx, "exclusive"):
        return ["--exclusive"]
    overlap = _op(ctx, "overlap")
    if overlap is not None:
        return ["--overlap"] if overlap else ["--exact"]
    return ["--exact"] if asks_for_gpus(ctx) else ["--overlap"]


def export_arg(ctx: LaunchContext) -> str:
    """`--export=ALL` by default; a restricted export still passes the task's variables (by name)."""
    export = str(_op(ctx, "export") or "ALL")
    if export.split(",")[0] == "ALL":
        return f"--export={export}"
    names = [n for n in export.split(",") if n and n != "NONE"]
    names += [n for n in (*ctx.env, STEP_FILE_ENV) if n not in names]
    return f"--export={','.join(names)}"


def io_container_args(ctx: LaunchContext) -> list[str]:
    """Output, MPI and container (pyxis) flags.

    With a container, as pyxis users expect: writable unless `container_writable: false`, and the
    home directory not mounted unless `container_mount_home: true`. The operator's mounts come
    after the same-path ones (`container_paths`: the SFLOW_* directories and the artifacts).
    """
    args = [flag for flag, field in (("--label", "label"), ("--unbuffered", "unbuffered")) if _op(ctx, field)]
    if _op(ctx, "mpi"):
        args.append(f"--mpi={_op(ctx, 'mpi')}")
    uses = getattr(ctx.operator, "uses_container", None)
    if not (uses and uses()):
        return args
    for flag, field in (
        ("--container-image", "container_image"),
        ("--container-name", "container_name"),
        ("--container-workdir", "container_workdir"),
    ):
        if _op(ctx, field):
            args.append(f"{flag}={_op(ctx, field)}")
    mounts = container_mounts(ctx)
    if mounts:
        args.append(f"--container-mounts={','.join(mounts)}")
    args.append("--container-mount-home" if _op(ctx, "container_mount_home") else "--no-container-mount-home")
    if _op(ctx, "container_writable") is not False:
        args.append("--container-writable")
    if _op(ctx, "container_remap_root"):
        args.append("--container-remap-root")
    return args


def container_mounts(ctx: LaunchContext) -> list[str]:
    """The operator's mounts and those in its extra_args, then (for an image or a named container)
    the task's shared paths at the same place, read-write: one mount per destination."""
    mounts = list(_op(ctx, "container_mounts") or ())
    mounts += [m for value in _extra_mounts(ctx) for m in value.split(",") if m]
    if _op(ctx, "container_image") or _op(ctx, "container_name"):
        mounts += [f"{path}:{path}:rw" for path in ctx.shared_paths]
    by_destination: dict[str, str] = {}
    for mount in mounts:
        parts = mount.split(":")
        by_destination.setdefault(parts[1] if len(parts) > 1 else parts[0], mount)
    return list(by_destination.values())


def _extra_mounts(ctx: LaunchContext) -> list[str]:
    words = [word for arg in _op(ctx, "extra_args") or () for word in split_args(arg)]
    values = [w.split("=", 1)[1] for w in words if w.startswith("--container-mounts=")]
    values += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--container-mounts"]
    return values


def extra_args(ctx: LaunchContext) -> list[str]:
    """The operator's extra_args as words, without the `--container-mounts` merged above."""
    words = [word for arg in _op(ctx, "extra_args") or () for word in split_args(arg)]
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--container-mounts":
            skip = True
        elif not word.startswith("--container-mounts="):
            out.append(word)
    return out


def job_of(ctx: LaunchContext) -> str:
    """The operator's `job_id`, else the allocation's (a placeholder while only planned)."""
    return str(_op(ctx, "job_id") or ctx.allocation.job_id or JOB_PLACEHOLDER)


def srun_argv(ctx: LaunchContext) -> list[str]:
    """The full srun command line of one attempt (pure)."""
    return [
        "srun",
        "--jobid",
        job_of(ctx),
        "--job-name",
        ctx.task,
        *shape_args(ctx),
        *sharing_args(ctx),
        *gpu_args(ctx),
        export_arg(ctx),
        *io_container_args(ctx),
        *extra_args(ctx),
        *(["--kill-on-bad-exit=1"] if _op(ctx, "kill_on_bad_exit") is not False else []),
        "bash",
        "-c",
        STEP_RECORDER,
        ctx.script_text(),
    ]


def step_file(log_path: Path) -> Path:
    """Where the step writes its id: beside the attempt's log (a shared filesystem, like the script)."""
    return log_path.with_name(log_path.name + ".step")


def rank_dir(log_path: Path) -> Path:
    """Where each rank writes its exit status (`<rank dir>/<rank>`)."""
    return log_path.with_name(log_path.name + ".step.ranks")


def srun_env(ctx: LaunchContext, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """srun's environment: ours minus srun input variables, plus the task's; GPUs left to Slurm."""
    base = {
        k: v for k, v in (ctx.host_env() if environ is None else environ).items() if k not in SRUN_INPUT_VARS
    }
    env = merged_env(base, ctx.env)
    if asks_for_gpus(ctx):
        env.pop("CUDA_VISIBLE_DEVICES", None)
    env[STEP_FILE_ENV] = str(step_file(ctx.log_path))
    return env


@register_launcher("srun")
class SrunLauncher(Launcher):
    """Builds `srun --jobid ... bash <script>` and supervises it as a `SrunAttempt`."""

    def argv(self, ctx: LaunchContext) -> list[str]:
        return srun_argv(ctx)

    def build(self, ctx: LaunchContext) -> LaunchSpec:
        info = {"nodes": ctx.placement.node_names, "slurm_job_id": ctx.allocation.job_id}
        return LaunchSpec(srun_argv(ctx), srun_env(ctx), ctx.cwd, ctx.log_path, info)

    async def start(self, ctx: LaunchContext) -> StepAttempt:
        if not ctx.allocation.job_id:
            raise ValueError(f"task '{ctx.task}': operator 'srun' needs a slurm backend (no job id)")
        spec = self.build(ctx)

        async def start_srun() -> SrunAttempt:
            step_file(ctx.log_path).unlink(missing_ok=True)
            ranks = rank_dir(ctx.log_path)
            shutil.rmtree(ranks, ignore_errors=True)
            ranks.mkdir(parents=True)
            log_start = ctx.log_path.stat().st_size if ctx.log_path.exists() else 0
            attempt = await SrunAttempt.start(spec)
            assert isinstance(attempt, SrunAttempt)
            attempt.task, attempt.log_start = ctx.task, log_start
            attempt.expected_ranks = step_ranks(ctx)
            attempt.watch, attempt.journal = ctx.allocation.watch, ctx.allocation.journal
            return attempt

        return StepAttempt(start_srun, await start_srun())


# -- supervision ----------------------------------------------------------------------------------


def parse_step_file(text: str) -> str | None:
    """'123.4' from the step file, or None when it is empty or incomplete."""
    value = text.strip()
    return value if re.fullmatch(r"\d+\.\d+", value) else None


class SrunAttempt(ProcessAttempt):
    """A running srun: its step id once the step reports it, a stop that leaves no step behind."""

    task = ""
    expected_ranks = 1
    log_start = 0  # where this srun's output begins in the log (an earlier srun may have written)
    start_error: str | None = None  # why Slurm could not start the step, when that passes
    watch: AllocationWatch | None = None  # asked when the step fails: is the allocation gone?
    journal: SlurmJournal | None = None  # where the step id goes once known

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        super().__init__(proc, spec)
        self.job_id = str(spec.info.get("slurm_job_id") or "")
        self.step_path = Path(spec.env[STEP_FILE_ENV])
        self.rank_path = Path(f"{self.step_path}.ranks")
        self._stopping = False
        self._stop_step: str | None = None  # the step as known when the stop began
        self._step_stop = Stopper(
            self.proc.wait,
            Step("TERM", self._terminate),
            Step("TERM to srun, scancel", self._force, STOP_KILL_WAIT),
            Step("KILL", lambda: signal_group(self.proc.pid, signal.SIGKILL), math.inf),
        )
        self._watcher = asyncio.ensure_future(self._watch_step())

    @property
    def step_id(self) -> str | None:
        """'<job>.<step>' once the step has written it (also in `info['slurm_step_id']`)."""
        if "slurm_step_id" not in self.info:
            try:
                step = parse_step_file(self.step_path.read_text())
            except OSError:
                step = None
            if step:
                self.info["slurm_step_id"] = step
                if self.journal is not None:
                    self.journal.add(STEP, step, task=self.task)
        return self.info.get("slurm_step_id")

    async def _watch_step(self) -> None:
        """Learn the step id soon after the step starts (a local stat, no controller call)."""
        delay = 0.02
        while self.proc.returncode is None and self.step_id is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        self._watcher.cancel()
        await self._reap_group()
        # where srun and slurmstepd write their verdicts
        tail = read_end(self.log_path, 8192, since=self.log_start) or ""
        ranks = read_rank_records(self.rank_path)
        verdict = step_verdict(code, self.step_id, tail, ranks, self.expected_ranks, self._stopping)
        if verdict.state == "FAILED" and self.step_id and not self._stopping:
            verdict = recorded(verdict, self.step_id, await step_end_state(self.step_id))
        if not self._stopping:
            self.start_error = passing_start_error(code, self.step_id, tail, ranks)
        step = self.step_id or parse_banner(tail)[0]
        self.step_path.unlink(missing_ok=True)  # their content now lives in info
        shutil.rmtree(self.rank_path, ignore_errors=True)
        if step:
            self.info["slurm_step_id"] = step
        self.info.update(slurm_state=verdict.state, exit_code=code)
        lost = None if verdict.ok or self._stopping else await self._allocation_lost()
        # a step of an allocation that is gone would fail the same way again: no retry
        return Outcome(
            ok=verdict.ok, reason=verdict.reason, exit_code=code, info=self.info, retryable=not lost
        )

    async def _allocation_lost(self) -> str | None:
        """Why the allocation ended, when the step failed because it did (the run stops then)."""
        if self.watch is None:
            return None
        try:
            return await self.watch.check()
        except SlurmCommandError:
            return None

    async def stop(self, grace: float) -> None:
        if self.proc.returncode is None:
            self._stopping = True
            await self._step_stop.stop(grace)
        await self.wait()
        if self._stopping and self.step_id:
            await self._wait_step_gone(self.step_id)

    async def _terminate(self) -> None:
        """TERM to the step's tasks (they may clean up); without a step, TERM to srun itself."""
        self._stop_step = self.step_id or await self._find_step()
        if self._stop_step:
            try:
                await scancel(self._stop_step, signal="TERM")
                return
            except SlurmCommandError:
                pass
        signal_group(self.proc.pid, signal.SIGTERM)

    async def _force(self) -> None:
        """After the grace: srun kills the step on TERM; scancel makes sure even if srun is stuck."""
        signal_group(self.proc.pid, signal.SIGTERM)
        step = self._stop_step or self.step_id or await self._find_step()
        if step:
            try:
                await scancel(step)
            except SlurmCommandError:
                pass

    async def _find_step(self) -> str | None:
        """The step by name, as the run's watcher sees the job's steps, for a step that has not
        written its id (yet)."""
        if not self.job_id or not self.task:
            return None
        try:
            steps = await run_watcher().steps_of(self.job_id)
        except SlurmCommandError:
            return None
        ours = [step for step, name in steps.items() if name == self.task]
        return max(ours, key=lambda s: int(s.rpartition(".")[2]), default=None)

    async def _wait_step_gone(self, step: str) -> None:
        """Return once squeue no longer lists the step (it may linger while completing)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await run_watcher().step_gone(step, STEP_GONE_WAIT)


class StepAttempt(Attempt):
    """One attempt of a task: srun, and srun again while Slurm cannot start the step for a reason
    that passes (the controller restarting, "Socket timed out", the allocation's memory still
    counted as taken after a restart). Those sruns share the attempt and its log: they are not
    the task's retries, which are for the task's own failures."""

    def __init__(self, start_srun: Callable[[], Awaitable[SrunAttempt]], first: SrunAttempt) -> None:
        self._start_srun = start_srun
        self.current = first
        self.log_path = first.log_path
        self.info = first.info
        self._outcome = Once(self._wait_once)
        self._stop_requested: asyncio.Event | None = None
        self._grace = 0.0

    async def wait(self) -> Outcome:
        return await self._outcome()

    async def _wait_once(self) -> Outcome:
        stop = self._stop_event()
        for delay in START_AGAIN_DELAYS:
            outcome = await self.current.wait()
            error = self.current.start_error
            if outcome.ok or error is None or not outcome.retryable or stop.is_set():
                return outcome
            _append(
                self.log_path, f"sflow: Slurm could not start the step ({error}); srun again in {delay:g}s\n"
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return outcome
            self.current = await self._start_srun()
            self.info.update(self.current.info)
            if stop.is_set():  # a stop came while srun was starting
                await self.current.stop(self._grace)
        outcome = await self.current.wait()
        if self.current.start_error:
            outcome.reason += f" (Slurm could not start the step for {sum(START_AGAIN_DELAYS):g}s)"
        return outcome

    @property
    def step_id(self) -> str | None:
        """'<job>.<step>' of the current srun's step, once it has started."""
        return self.current.step_id

    async def stop(self, grace: float) -> None:
        self._grace = grace
        self._stop_event().set()
        await self.current.stop(grace)
        await self.wait()

    def _stop_event(self) -> asyncio.Event:
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        return self._stop_requested


def _append(path: Path | None, text: str) -> None:
    if path is not None:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
