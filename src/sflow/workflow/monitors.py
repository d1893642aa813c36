"""Start and stop a run's hardware monitors: the workflow's for the whole run, a task's for each attempt.

A monitor is one sampler per node (`sflow.monitor.sampler`): a local process on the local and
docker backends, one Slurm step on every node (`srun --overlap`, so it takes nothing from the
tasks) on a Slurm allocation. Each writes `<run>/monitor/<owner>/<node>.csv` (`docs/monitor.md`).
Stopping one is TERM, the sampler's last row, and the grace the run gives every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.backends.base import Allocation
from sflow.backends.placement import Node
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.groups import signal_group
from sflow.proc.spawn import Child, LaunchSpec
from sflow.proc.stop import Step, Stopper, poll_until
from sflow.schema.base import as_json
from sflow.schema.monitor import Monitor
from sflow.schema.resources import NodeResources

MONITOR_FOLDER = "monitor"
SRUN_TERM_WAIT = 5.0  # seconds srun gets to end its step after TERM, before KILL
WORKFLOW_OWNER = "workflow"


def monitor_dir(run_dir: Path, task: str | None = None) -> Path:
    """`<run>/monitor/workflow` for the workflow's monitor, `<run>/monitor/tasks/<task>` for a task's."""
    base = run_dir / MONITOR_FOLDER
    return base / WORKFLOW_OWNER if task is None else base / "tasks" / task


@dataclass
class Target:
    """What one monitor samples on one backend: these nodes, and the GPUs of interest on each."""

    backend: str
    allocation: Allocation
    nodes: list[str]
    gpus: dict[str, list[int]] = field(default_factory=dict)


def describe_monitor(monitor: Monitor) -> str:
    """`cpu 1000 ms, gpu 500 ms` for the plan."""
    scopes = [f"{scope} {ms} ms" for scope, ms in monitor.scope_intervals().items()]
    if monitor.custom_script():
        scopes.append(f"custom {monitor.interval} ms")
    return ", ".join(scopes)


def sampler_argv(monitor: Monitor, out: Path, node: str | None, custom: Path | None = None) -> list[str]:
    """The sampler's command line; `node` None lets it name its node (Slurm's `SLURMD_NODENAME`)."""
    argv = [sys.executable, "-m", "sflow.monitor.sampler", "--out", str(out)]
    if node is not None:
        argv += ["--node", node]
    intervals = monitor.scope_intervals()
    for scope, ms in intervals.items():
        argv += ["--scope", f"{scope}={ms}"]
    if "gpu" in intervals:
        argv += ["--gpu-fields", monitor.gpu_fields()]
    if custom is not None:
        argv += ["--custom", str(custom), "--custom-interval", str(monitor.interval)]
    return argv


def step_name(task: str | None) -> str:
    """The monitor step's name: one at a time per owner, so it finds its step by name."""
    return f"sflow-monitor.{task or WORKFLOW_OWNER}"


def srun_monitor_argv(job_id: str, nodes: Sequence[str], sampler: list[str], name: str) -> list[str]:
    """One sampler on each of `nodes`, in a step that overlaps the tasks' and holds no GPU."""
    return [
        "srun",
        "--jobid",
        job_id,
        "--job-name",
        name,
        "--overlap",
        "--nodes",
        str(len(nodes)),
        "--ntasks",
        str(len(nodes)),
        "--ntasks-per-node",
        "1",
        "--nodelist",
        ",".join(nodes),
        *sampler,
    ]


def select_nodes(nodes: Sequence[Node], wanted: NodeResources | None) -> list[Node]:
    """`resources.nodes` of a monitor over an allocation's nodes: `exclude`, then `indices` or `count`."""
    if wanted is None:
        return list(nodes)
    chosen = list(nodes)
    if isinstance(wanted.exclude, list):
        gone = {int(i) % len(nodes) for i in wanted.exclude}
        chosen = [n for n in chosen if n.index not in gone]
    if isinstance(wanted.indices, list):
        by_index = {n.index: n for n in chosen}
        chosen = [by_index[int(i) % len(nodes)] for i in wanted.indices if int(i) % len(nodes) in by_index]
    elif isinstance(wanted.count, int):
        chosen = chosen[: wanted.count]
    return chosen


class MonitorStep(ProcessAttempt):
    """The srun of a monitor's samplers. Stopped by TERM to the step itself, so each sampler writes
    its last row (srun, given TERM, kills its tasks); after the grace, TERM to srun, then KILL."""

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        super().__init__(proc, spec)
        self.job_id = ""
        self.name = ""
        self._step_stop = Stopper(
            self.proc.wait,
            Step("TERM", self._term_step),
            Step("TERM to srun", lambda: signal_group(self.proc.pid, signal.SIGTERM), SRUN_TERM_WAIT),
            Step("KILL", lambda: signal_group(self.proc.pid, signal.SIGKILL), math.inf),
        )

    async def stop(self, grace: float) -> None:
        await self._step_stop.stop(grace)
        await self.wait()

    async def _term_step(self) -> None:
        step = await self._find_step()
        if step is None or not await _term(step):
            signal_group(self.proc.pid, signal.SIGTERM)

    async def _find_step(self) -> str | None:
        from sflow.slurm.commands import SlurmCommandError, run_slurm

        try:
            out = await run_slurm(
                ["squeue", "--noheader", "--steps", "--jobs", self.job_id, "--format=%i|%j"]
            )
        except SlurmCommandError:
            return None
        steps = [
            s for s, _, name in (line.partition("|") for line in out.stdout.split()) if name == self.name
        ]
        return steps[-1] if steps else None


async def _term(step: str) -> bool:
    from sflow.slurm.commands import SlurmCommandError, scancel

    try:
        return await scancel(step, signal="TERM")
    except SlurmCommandError:
        return False


class RunningMonitor:
    """The samplers of one monitor (a process per node, or one srun per backend) and the CSV file
    each node's sampler writes once it samples."""

    def __init__(self, attempts: list[tuple[ProcessAttempt, list[Path]]]) -> None:
        self.attempts = attempts

    async def stop(self, grace: float) -> None:
        """TERM once the samplers sample (a short task's monitor still has its rows), then stop."""
        deadline = asyncio.get_running_loop().time() + grace
        await asyncio.gather(*(_stop_once_sampling(a, files, deadline, grace) for a, files in self.attempts))


async def _stop_once_sampling(
    attempt: ProcessAttempt, files: list[Path], deadline: float, grace: float
) -> None:
    """A sampler takes TERM as its cue for a last row only once it has begun (until then TERM ends
    it at once): wait for its files, while it runs and at most until `deadline`."""
    loop = asyncio.get_running_loop()
    begun = poll_until(lambda: attempt.proc.returncode is not None or all(f.exists() for f in files))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(begun, max(0.0, deadline - loop.time()))
    await attempt.stop(max(1.0, min(grace, deadline - loop.time())))


class Monitors:
    """Every monitor a run has started, stopped at its end whatever happens."""

    def __init__(self, run_dir: Path, cwd: Path, base_env: Mapping[str, str], grace: float) -> None:
        self.run_dir = run_dir
        self.cwd = cwd
        self.base_env = dict(base_env)
        self.grace = grace
        self.running: list[RunningMonitor] = []

    async def start(
        self,
        monitor: Monitor,
        targets: Iterable[Target],
        task: str | None = None,
        env: Mapping[str, str] | None = None,
        custom_script: str | None = None,
    ) -> RunningMonitor:
        """Samplers for `monitor` on every target node; `task` None for the workflow's monitor."""
        out = monitor_dir(self.run_dir, task)
        out.mkdir(parents=True, exist_ok=True)
        targets = [t for t in targets if t.nodes]
        custom = None
        if custom_script is not None:
            custom = out / "custom.sh"
            custom.write_text(custom_script, encoding="utf-8")
        _write_description(out, monitor, task, targets)
        env = {**self.base_env, **(env or {})}
        attempts: list[tuple[ProcessAttempt, list[Path]]] = []
        for target in targets:
            log = out / "sampler.log"
            job_id = target.allocation.job_id
            if not job_id:
                for node in target.nodes:
                    spec = LaunchSpec(sampler_argv(monitor, out, node, custom), env, self.cwd, log)
                    attempts.append((await ProcessAttempt.start(spec), [out / f"{node}.csv"]))
                continue
            from sflow.launchers.srun import SRUN_INPUT_VARS  # here: a local run never loads srun

            step_env = {k: v for k, v in env.items() if k not in SRUN_INPUT_VARS}
            argv = srun_monitor_argv(
                job_id, target.nodes, sampler_argv(monitor, out, None, custom), step_name(task)
            )
            step = await MonitorStep.start(LaunchSpec(argv, step_env, self.cwd, log))
            assert isinstance(step, MonitorStep)
            step.job_id, step.name = job_id, step_name(task)
            attempts.append((step, [out / f"{node}.csv" for node in target.nodes]))
        running = RunningMonitor(attempts)
        self.running.append(running)
        return running

    async def stop(self, running: RunningMonitor) -> None:
        if running in self.running:
            self.running.remove(running)
        await running.stop(self.grace)

    async def stop_all(self) -> None:
        running, self.running = self.running, []
        await asyncio.gather(*(r.stop(self.grace) for r in running))


def _write_description(out: Path, monitor: Monitor, task: str | None, targets: list[Target]) -> None:
    """`monitor.json`: what the samples are of, for the report (nodes, GPUs of interest, window)."""
    data: dict[str, Any] = {
        "owner": task or WORKFLOW_OWNER,
        "interval_ms": monitor.interval,
        "scopes": monitor.scope_intervals(),
        "targets": [{"backend": t.backend, "nodes": t.nodes, "gpus": t.gpus} for t in targets],
        "window": as_json(monitor.window) if monitor.window is not None else None,
        "report": as_json(monitor.report),
    }
    if monitor.resources is not None and monitor.resources.used_by_tasks:
        data["used_by_tasks"] = monitor.resources.used_by_tasks
    (out / "monitor.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def workflow_targets(monitor: Monitor, allocations: Mapping[str, Allocation]) -> list[Target]:
    """The workflow's monitor covers every node of every backend (its `resources.nodes` a subset)."""
    wanted = monitor.resources.nodes if monitor.resources is not None else None
    return [
        Target(name, alloc, [n.name for n in select_nodes(alloc.nodes, wanted)])
        for name, alloc in allocations.items()
    ]


@dataclass
class Placed:
    """Where a task instance runs: what `used_by_tasks` monitors."""

    task: str
    backend: str
    nodes: list[str]
    gpus: list[list[int]]


def task_targets(
    monitor: Monitor, own: Placed, allocations: Mapping[str, Allocation], placed: Iterable[Placed]
) -> list[Target]:
    """A task's monitor covers its own nodes, or those of the tasks named in `used_by_tasks`."""
    used_by = monitor.resources.used_by_tasks if monitor.resources is not None else None
    sources = [p for p in placed if p.task in used_by] if used_by else [own]
    targets: dict[str, Target] = {}
    for source in sources:
        target = targets.setdefault(source.backend, Target(source.backend, allocations[source.backend], []))
        for node, gpus in zip(source.nodes, source.gpus or [[] for _ in source.nodes], strict=False):
            if node not in target.nodes:
                target.nodes.append(node)
            target.gpus[node] = sorted({*target.gpus.get(node, []), *gpus})
    wanted = monitor.resources.nodes if monitor.resources is not None else None
    for target in targets.values():
        if wanted is not None:
            keep = {n.name for n in select_nodes(target.allocation.nodes, wanted)}
            target.nodes = [n for n in target.nodes if n in keep]
    return list(targets.values())
