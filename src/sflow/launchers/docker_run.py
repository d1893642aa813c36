"""The `docker_run` operator: one attempt of a task is one container per node it was placed on.

Decisions, and why:
- The client stays attached (`docker run --rm`, no `-d`): the container's output streams into the
  attempt's log as it runs, and the client's exit code is the container's.
- Every container is named `sflow-<run>-<task>-<attempt>` and labelled `sflow.run=<run id>`, so a
  stop reaches it by name and the run's end finds any leftover by label (`proc.container`).
- Paths are the same inside and out: the four `SFLOW_*` directories (which hold the task's script)
  and every `fs://` or generated `file://` artifact are bind-mounted at their own path. On a daemon
  named by `docker_host` or `context` (maybe another machine) nothing is mounted, and the script
  is handed over as text.
- The environment goes by name (`-e NAME`, its value taken from the client's environment), never
  as values on the command line. `pass_envs: false` hands over only sflow's own `SFLOW_*` values.
- GPUs: the container gets exactly the devices placement chose (`--gpus "device=0,1"`), seen inside
  as `CUDA_VISIBLE_DEVICES=0,..,N-1`; a task without GPUs gets `NVIDIA_VISIBLE_DEVICES=void`.
  Those devices are locked on their daemon for the attempt's life against other sflow runs
  (`backends.gpu_locks`): a run that wants one held fails at once, or waits (`wait_for_gpus`).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sflow.backends.docker import DAEMONS, backend_config
from sflow.backends.gpu_locks import GpuClaim, GpuLocks, reserve
from sflow.engine.once import Once
from sflow.engine.unit import Attempt, Outcome
from sflow.launchers.base import RUN_ID_PLACEHOLDER, LaunchContext, Launcher, register_launcher
from sflow.proc.attempt import ProcessAttempt, describe_exit
from sflow.proc.container import Daemon, docker_error, label_args, stop_container
from sflow.proc.groups import signal_group
from sflow.proc.spawn import Child, LaunchSpec, merged_env
from sflow.proc.stop import Step, Stopper
from sflow.record.tail import read_end
from sflow.slurm.flags import split_args

MOUNTED_DIRS = (
    "SFLOW_WORKSPACE_DIR",
    "SFLOW_OUTPUT_DIR",
    "SFLOW_WORKFLOW_OUTPUT_DIR",
    "SFLOW_TASK_OUTPUT_DIR",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
CLIENT_EXIT_WAIT = 10.0  # after the container is gone: how long its client may take to notice


def _setting(ctx: LaunchContext, field: str) -> Any:
    """The operator's value of `field`, else the docker backend's."""
    value = getattr(ctx.operator, field, None)
    if value in (None, "", []):
        value = getattr(backend_config(ctx.allocation), field, None)
    return value


def container_name(ctx: LaunchContext, node_index: int = 0) -> str:
    """`sflow-<run>-<task>-<attempt>` (and `-n<i>` past the first node), in docker's alphabet."""
    parts = ["sflow", ctx.run_id or "run", ctx.task, str(ctx.attempt)]
    name = _UNSAFE.sub("_", "-".join(parts))
    if ctx.run_id == RUN_ID_PLACEHOLDER:  # a dry run shows where the id goes
        name = name.replace(_UNSAFE.sub("_", RUN_ID_PLACEHOLDER), RUN_ID_PLACEHOLDER, 1)
    return f"{name}-n{node_index}" if node_index else name


def daemon_of(ctx: LaunchContext, node: str) -> Daemon:
    daemons = ctx.allocation.info.get(DAEMONS) or {}
    return daemons.get(node, Daemon())


def gpu_args(ctx: LaunchContext, node_index: int) -> tuple[list[str], dict[str, str]]:
    """(`--gpus` flag, container env) for the devices placement gave the task on this node."""
    devices = ctx.placement.gpus[node_index] if node_index < len(ctx.placement.gpus) else ()
    asked = getattr(ctx.operator, "gpus", None)
    if devices:
        ids = ",".join(str(d) for d in devices)
        visible = ",".join(str(i) for i in range(len(devices)))
        return [f'--gpus="device={ids}"'], {"CUDA_VISIBLE_DEVICES": visible}
    if asked:
        return [f"--gpus={asked}"], {}
    return [], {"NVIDIA_VISIBLE_DEVICES": "void"}


def passed_names(ctx: LaunchContext, container_env: dict[str, str]) -> list[str]:
    """The variables the container gets (by name): the task's, or only sflow's with pass_envs off."""
    names = list(ctx.env)
    if getattr(ctx.operator, "pass_envs", True) is False:
        names = [n for n in names if n.startswith("SFLOW_")]
    return [*names, *container_env]


def docker_argv(ctx: LaunchContext, node_index: int = 0) -> list[str]:
    """The `docker run` command line of one attempt on one of its nodes (pure)."""
    node = ctx.placement.node_names[node_index] if ctx.placement.nodes else "localhost"
    daemon = daemon_of(ctx, node)
    image = _setting(ctx, "image")
    if not image:
        raise ValueError(
            f"task '{ctx.task}': docker_run needs an 'image' (on the operator or the docker backend)"
        )
    gpu_flags, gpu_env = gpu_args(ctx, node_index)
    workdir = _setting(ctx, "workdir")
    backend = backend_config(ctx.allocation)
    mounts = [*(getattr(backend, "mounts", None) or ()), *(getattr(ctx.operator, "mounts", None) or ())]
    extra = [
        *(getattr(backend, "extra_args", None) or ()),
        *(getattr(ctx.operator, "extra_args", None) or ()),
    ]
    script = (
        ["bash", "-lc", _script_text(ctx.script_path)] if daemon.remote else ["bash", "-l", ctx.script_text()]
    )
    return daemon.argv(
        "run",
        "--rm",
        f"--name={container_name(ctx, node_index)}",
        *label_args(ctx.run_id, ctx.task),
        *([] if daemon.remote else (f"-v={p}:{p}" for p in ctx.shared_paths)),
        *(f"-v={m}" for m in mounts),
        *([f"--workdir={workdir}"] if workdir else []),
        *(f"-e={name}" for name in passed_names(ctx, gpu_env)),
        *gpu_flags,
        *(word for arg in extra for word in split_args(arg)),
        str(image),
        *script,
    )


def _script_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # a dry run shows where the text comes from
        return f"<the script {path}>"


def daemon_key(ctx: LaunchContext, daemon: Daemon) -> str:
    """The daemon as GPU locks know it: the same GPUs are the same devices on the same daemon."""
    return (
        daemon.host
        or (f"context-{daemon.context}" if daemon.context else None)
        or (ctx.host_env().get("DOCKER_HOST") or "local")
    )


def gpu_claims(ctx: LaunchContext) -> list[GpuClaim]:
    """The devices placement gave the task, per daemon."""
    claims = []
    for i, devices in enumerate(ctx.placement.gpus):
        if devices and i < len(ctx.placement.nodes):
            daemon = daemon_of(ctx, ctx.placement.node_names[i])
            claims.append(GpuClaim(daemon_key(ctx, daemon), tuple(devices)))
    return claims


async def reserve_gpus(ctx: LaunchContext) -> GpuLocks:
    """Lock the task's GPUs against other runs: at once, or waiting as `wait_for_gpus` says."""
    claims = gpu_claims(ctx)
    if not claims:
        return GpuLocks()
    wait = getattr(backend_config(ctx.allocation), "wait_for_gpus", None)
    owner = {"run": ctx.run_id, "pid": os.getpid(), "task": ctx.task}

    def note(held: str) -> None:
        with open(ctx.log_path, "a", encoding="utf-8") as log:
            log.write(f"sflow: waiting for the task's GPUs: {held}\n")

    return await reserve(claims, owner, None if wait is None else float(wait), note)


def client_env(ctx: LaunchContext, node_index: int) -> dict[str, str]:
    """The docker client's environment: ours, the task's values (passed on by name), GPU values."""
    return merged_env(ctx.host_env(), ctx.env, gpu_args(ctx, node_index)[1])


def launch_spec(ctx: LaunchContext, node_index: int) -> LaunchSpec:
    node = ctx.placement.node_names[node_index] if ctx.placement.nodes else "localhost"
    daemon = daemon_of(ctx, node)
    log = ctx.log_path if node_index == 0 else ctx.log_path.with_name(f"{ctx.log_path.name}.n{node_index}")
    info = {
        "nodes": ctx.placement.node_names,
        "container": container_name(ctx, node_index),
        "docker_host": daemon.host,
        "docker_context": daemon.context,
    }
    return LaunchSpec(docker_argv(ctx, node_index), client_env(ctx, node_index), ctx.cwd, log, info)


class ContainerAttempt(ProcessAttempt):
    """An attached `docker run --name <name>`: stopped through the daemon, never left behind."""

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        super().__init__(proc, spec)
        self.name = str(spec.info["container"])
        self.daemon = Daemon(spec.info.get("docker_host"), spec.info.get("docker_context"))
        self._stopping = False
        self._grace = math.inf  # the shortest grace a stop was given
        self._client_stop = Stopper(
            self.proc.wait,
            Step("docker stop", self._stop_container, CLIENT_EXIT_WAIT),
            Step("KILL", lambda: signal_group(self.proc.pid, signal.SIGKILL), math.inf),
        )

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        await self._reap_group()
        if code < 0 or self._stopping:  # the client died first: the container may still be there
            await stop_container(self.daemon, self.name, 0)
        reason = describe_exit(code)
        if code == 125:  # docker's own failure: the container did not run
            error = docker_error(read_end(self.log_path, 4096) or "")
            reason += f" (docker: {error})" if error else " (docker could not run the container)"
        return Outcome(ok=code == 0, reason=reason, exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        """`docker stop` (TERM, the grace, KILL), then the client ends; one that hangs is killed.

        A second, shorter stop (a second Ctrl-C) asks the daemon again with the shorter grace.
        """
        if self.proc.returncode is None:
            self._stopping = True
            hurry = self._client_stop.started and grace < self._grace
            self._grace = min(self._grace, grace)
            if hurry:
                await stop_container(self.daemon, self.name, grace)
            await self._client_stop.stop(grace)
        await self.wait()

    async def _stop_container(self) -> None:
        if not await stop_container(self.daemon, self.name, self._grace):
            signal_group(self.proc.pid, signal.SIGTERM)  # a client still creating it gives up


@register_launcher("docker_run")
class DockerRunLauncher(Launcher):
    """`docker run` on each node of the task, supervised as `ContainerAttempt`s."""

    def argv(self, ctx: LaunchContext) -> list[str]:
        return docker_argv(ctx)

    def build(self, ctx: LaunchContext) -> LaunchSpec:
        return launch_spec(ctx, 0)

    async def start(self, ctx: LaunchContext) -> Attempt:
        count = max(1, len(ctx.placement.nodes))
        gpu_locks = await reserve_gpus(ctx)
        attempts: list[ContainerAttempt] = []
        try:
            for i in range(count):
                started = await ContainerAttempt.start(launch_spec(ctx, i))
                assert isinstance(started, ContainerAttempt)
                attempts.append(started)
        except BaseException:
            await asyncio.gather(*(a.stop(0) for a in attempts))
            gpu_locks.release()
            raise
        return ContainerGroup(attempts, gpu_locks)


class ContainerGroup(Attempt):
    """One container per node (one or more): the attempt fails as soon as one fails, and then stops
    the others; the task's GPU locks are released once every container is gone."""

    def __init__(self, attempts: Sequence[ContainerAttempt], gpu_locks: GpuLocks) -> None:
        self.attempts = list(attempts)
        self.gpu_locks = gpu_locks  # released when every container is gone
        self.log_path = attempts[0].log_path
        self.info = dict(attempts[0].info, containers=[a.name for a in attempts])
        self._outcome = Once(self._wait_once)

    async def wait(self) -> Outcome:
        return await self._outcome()

    async def _wait_once(self) -> Outcome:
        try:
            return await self._containers_end()
        finally:
            self.gpu_locks.release()

    async def _containers_end(self) -> Outcome:
        pending = {asyncio.ensure_future(a.wait()): a for a in self.attempts}
        failed: Outcome | None = None
        while pending and failed is None:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                attempt = pending.pop(fut)
                if not fut.result().ok and failed is None:
                    failed = fut.result()
                    if len(self.attempts) > 1:
                        failed.reason += f" (container {attempt.name})"
        if failed is not None:
            await asyncio.gather(*(a.stop(0) for a in pending.values()))
            return failed
        return Outcome(ok=True, reason="exit code 0", exit_code=0, info=self.info)

    async def stop(self, grace: float) -> None:
        await asyncio.gather(*(a.stop(grace) for a in self.attempts))
        await self.wait()
