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
  file next to the attempt's log before exec'ing `bash <script>`. That works for steps that fail
  in milliseconds (too fast for squeue) and costs the controller nothing.
- Stop: `scancel --signal=TERM <job>.<step>` lets the task clean up (TERM to srun itself makes
  srun SIGKILL the step at once); after the grace, TERM to srun (it kills the step) plus
  `scancel <job>.<step>`, and we return only when Slurm no longer lists the step.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sflow.engine.unit import Outcome
from sflow.launchers.base import LaunchContext, Launcher, register_launcher
from sflow.proc.process import (
    Child,
    LaunchSpec,
    ProcessAttempt,
    describe_exit,
    merged_env,
    signal_group,
)
from sflow.record.tail import read_end
from sflow.slurm.commands import SlurmCommandError, run_slurm, scancel
from sflow.slurm.flags import slurm_time, split_args

STEP_FILE_ENV = "SFLOW_SLURM_STEP_FILE"
JOB_PLACEHOLDER = "<slurm-job-id>"
# Task 0 records "<job>.<step>" then becomes `bash <script>` ($0 is the script path).
STEP_RECORDER = (
    '[ "${SLURM_PROCID:-0}" != 0 ] || { echo "$SLURM_JOB_ID.$SLURM_STEP_ID" '
    '> "${' + STEP_FILE_ENV + ':-/dev/null}"; } 2>/dev/null; exec bash "$0"'
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
STEP_GONE_WAIT = 30.0
BANNER_RE = re.compile(
    r"\*\*\* (?:STEP (\d+\.\d+)|JOB (\d+)) ON \S+ ([A-Z_]+)(?: AT \S+)?(?: DUE TO ([A-Z ]+?))? \*\*\*"
)
SRUN_ERROR_RE = re.compile(r"^srun: error: (.+)$", re.MULTILINE)


def _op(ctx: LaunchContext, name: str) -> Any:
    """An operator field (models are still evolving: absent means None)."""
    return getattr(ctx.operator, name, None)


def step_gpus(ctx: LaunchContext) -> int:
    """GPUs per node the task asked for (our Placer counted them; Slurm binds them)."""
    return len(ctx.placement.gpus[0]) if ctx.placement.gpus else 0


def asks_for_gpus(ctx: LaunchContext) -> bool:
    return bool(step_gpus(ctx) or _op(ctx, "gres") or _op(ctx, "gpus") or _op(ctx, "gpus_per_task"))


def shape_args(ctx: LaunchContext) -> list[str]:
    """Nodes, tasks, CPUs, memory, time and the other Slurm fields of the step.

    An operator's own `nodelist` takes the place of the nodes placement chose.
    """
    nodes = list(_op(ctx, "nodelist") or ()) or ctx.placement.node_names
    n = len(nodes)
    ntasks, per_node = _op(ctx, "ntasks"), _op(ctx, "ntasks_per_node")
    total = int(ntasks) if ntasks else n * int(per_node) if per_node else n
    args = ["--nodelist", ",".join(nodes), "-N", str(n), "--ntasks", str(total)]
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
    home directory not mounted unless `container_mount_home: true`.
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
    mounts = _op(ctx, "container_mounts")
    if mounts:
        args.append(f"--container-mounts={mounts if isinstance(mounts, str) else ','.join(mounts)}")
    args.append("--container-mount-home" if _op(ctx, "container_mount_home") else "--no-container-mount-home")
    if _op(ctx, "container_writable") is not False:
        args.append("--container-writable")
    if _op(ctx, "container_remap_root"):
        args.append("--container-remap-root")
    return args


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
        *[word for arg in _op(ctx, "extra_args") or () for word in split_args(arg)],
        *(["--kill-on-bad-exit=1"] if _op(ctx, "kill_on_bad_exit") is not False else []),
        "bash",
        "-c",
        STEP_RECORDER,
        ctx.script_text(),
    ]


def step_file(log_path: Path) -> Path:
    """Where the step writes its id: beside the attempt's log (a shared filesystem, like the script)."""
    return log_path.with_name(log_path.name + ".step")


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

    async def start(self, ctx: LaunchContext) -> SrunAttempt:
        if not ctx.allocation.job_id:
            raise ValueError(f"task '{ctx.task}': operator 'srun' needs a slurm backend (no job id)")
        spec = self.build(ctx)
        step_file(ctx.log_path).unlink(missing_ok=True)
        attempt = await SrunAttempt.start(spec)
        assert isinstance(attempt, SrunAttempt)
        attempt.task = ctx.task
        return attempt


# -- supervision ----------------------------------------------------------------------------------


def parse_step_file(text: str) -> str | None:
    """'123.4' from the step file, or None when it is empty or incomplete."""
    value = text.strip()
    return value if re.fullmatch(r"\d+\.\d+", value) else None


def parse_banner(log_tail: str) -> tuple[str | None, str | None]:
    """(step id, Slurm state) from slurmstepd's last '*** STEP 1.2 ON node CANCELLED ... ***' line."""
    matches = list(BANNER_RE.finditer(log_tail))
    if not matches:
        return None, None
    step, _job, state, due = matches[-1].groups()
    if due and "TIME LIMIT" in due:
        state = "TIMEOUT"
    elif due:
        state = f"{state} ({due.strip().lower()})"
    return step, state


def last_srun_error(log_tail: str) -> str | None:
    errors = SRUN_ERROR_RE.findall(log_tail)
    return errors[-1].strip() if errors else None


def describe_step(code: int, step: str | None, state: str | None, error: str | None) -> tuple[str, str]:
    """(Slurm state, reason) for an ended srun: 'exit code 3 (step 12.4 FAILED: node1: task 0: ...)'."""
    state = state or ("COMPLETED" if code == 0 else "FAILED")
    base = describe_exit(code)
    if code == 0:
        return state, base
    detail = f"step {step} {state}" if step else "no step started"
    if error:
        detail += f": {error}"
    return state, f"{base} ({detail})"


class SrunAttempt(ProcessAttempt):
    """A running srun: its step id once the step reports it, a stop that leaves no step behind."""

    task = ""

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        super().__init__(proc, spec)
        self.job_id = str(spec.info.get("slurm_job_id") or "")
        self.step_path = Path(spec.env[STEP_FILE_ENV])
        self._stopping = False
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
        tail = read_end(self.log_path, 8192) or ""  # where srun and slurmstepd write their verdicts
        banner_step, state = parse_banner(tail)
        step = self.step_id or banner_step
        self.step_path.unlink(missing_ok=True)  # its content now lives in info
        if step:
            self.info["slurm_step_id"] = step
        if self._stopping and code != 0 and state is None:
            state = "CANCELLED"
        state, reason = describe_step(code, step, state, last_srun_error(tail))
        self.info.update(slurm_state=state, exit_code=code)
        return Outcome(ok=code == 0, reason=reason, exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        if self.proc.returncode is None:
            self._stopping = True
            step = self.step_id or await self._find_step()
            await self._terminate(step)
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
            except asyncio.TimeoutError:
                await self._force(step or self.step_id or await self._find_step())
        await self.wait()
        if self._stopping and self.step_id:
            await self._wait_step_gone(self.step_id)

    async def _terminate(self, step: str | None) -> None:
        """TERM to the step's tasks (they may clean up); without a step, TERM to srun itself."""
        if step:
            try:
                await scancel(step, signal="TERM")
                return
            except SlurmCommandError:
                pass
        signal_group(self.proc.pid, signal.SIGTERM)

    async def _force(self, step: str | None) -> None:
        """After the grace: srun kills the step on TERM; scancel makes sure even if srun is stuck."""
        signal_group(self.proc.pid, signal.SIGTERM)
        if step:
            try:
                await scancel(step)
            except SlurmCommandError:
                pass
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), STOP_KILL_WAIT)
        except asyncio.TimeoutError:
            signal_group(self.proc.pid, signal.SIGKILL)

    async def _find_step(self) -> str | None:
        """The step by name from squeue, for a step that has not written its id (yet)."""
        if not self.job_id or not self.task:
            return None
        try:
            out = await run_slurm(
                ["squeue", "--noheader", "--steps", "--jobs", self.job_id, "--format=%i|%j"]
            )
        except SlurmCommandError:
            return None
        steps = [s for s, _, name in (ln.partition("|") for ln in out.stdout.split()) if name == self.task]
        return max(steps, key=lambda s: int(s.rpartition(".")[2]), default=None)

    async def _wait_step_gone(self, step: str) -> None:
        """Return once squeue no longer lists the step (it may linger while completing)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + STEP_GONE_WAIT, 0.05
        while loop.time() < deadline:
            try:
                out = await run_slurm(["squeue", "--noheader", f"--steps={step}", "--format=%i"])
            except SlurmCommandError:
                return
            if step not in out.stdout.split():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
