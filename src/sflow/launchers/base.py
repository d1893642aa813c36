"""The launcher contract: argv + env for one attempt of one task, then supervision.

`build` is pure (easy to unit-test and to show in --dry-run); `start` runs it. A
launcher is one module registering its operator `type` name.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sflow.backends.base import Allocation
from sflow.backends.placement import Placement
from sflow.engine.unit import Attempt
from sflow.errors import PlanError
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.spawn import LaunchSpec, merged_env

if TYPE_CHECKING:
    from sflow.schema.models import OperatorBase


RUN_ID_PLACEHOLDER = "<run-id>"  # the id of a run not started yet (a dry run): filled in at run time


@dataclass
class LaunchContext:
    """Everything a launcher may use to build one attempt."""

    task: str
    script_path: Path
    env: dict[str, str]
    cwd: Path
    log_path: Path
    placement: Placement
    allocation: Allocation
    operator: OperatorBase
    attempt: int = 1
    base_env: Mapping[str, str] | None = None  # the environment the run started with; os.environ if None
    run_id: str = ""  # labels what the attempt creates outside our process tree (containers)
    shared_paths: tuple[str, ...] = ()  # host paths a container of the task sees at the same place

    def host_env(self) -> Mapping[str, str]:
        """The environment tasks inherit (a snapshot taken once per run: copying os.environ is slow)."""
        return os.environ if self.base_env is None else self.base_env

    def script_text(self) -> str:
        """`str(script_path)`, as a command line holds it."""
        return str(self.script_path)


class Launcher(abc.ABC):
    """Builds and starts attempts for one operator type."""

    type_name: ClassVar[str]

    @abc.abstractmethod
    def build(self, ctx: LaunchContext) -> LaunchSpec:
        """The argv, environment and paths for this attempt (no side effects)."""

    def argv(self, ctx: LaunchContext) -> list[str]:
        """`build(ctx).argv` alone, without making the environment (what --dry-run shows)."""
        return self.build(ctx).argv

    async def start(self, ctx: LaunchContext) -> Attempt:
        return await ProcessAttempt.start(self.build(ctx))


class LocalLauncher(Launcher):
    """A launcher whose attempt is one process group on this machine: its command line is all it
    decides; the environment, working directory and log are every local task's."""

    @abc.abstractmethod
    def argv(self, ctx: LaunchContext) -> list[str]:
        """The command line of the attempt."""

    def build(self, ctx: LaunchContext) -> LaunchSpec:
        return LaunchSpec(
            argv=self.argv(ctx),
            env=task_process_env(ctx),
            cwd=ctx.cwd,
            log_path=ctx.log_path,
            info={"nodes": ctx.placement.node_names},
        )


def task_process_env(ctx: LaunchContext) -> dict[str, str]:
    """The environment a local process sees: ours, the task's variables, its GPUs."""
    env = merged_env(ctx.host_env(), ctx.env)
    if ctx.placement.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in ctx.placement.gpu_list)
    return env


_REGISTRY: dict[str, Launcher] = {}
_BUILTIN = {
    "bash": "sflow.launchers.bash",
    "srun": "sflow.launchers.srun",
    "python": "sflow.launchers.python",
    "docker_run": "sflow.launchers.docker_run",
}


def register_launcher(type_name: str) -> Callable[[type[Launcher]], type[Launcher]]:
    """Class decorator: make a launcher available under its operator `type:` name."""

    def deco(cls: type[Launcher]) -> type[Launcher]:
        cls.type_name = type_name
        _REGISTRY[type_name] = cls()
        return cls

    return deco


def get_launcher(type_name: str) -> Launcher:
    if type_name not in _REGISTRY and type_name in _BUILTIN:
        importlib.import_module(_BUILTIN[type_name])
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted({*_REGISTRY, *_BUILTIN}))
        raise PlanError(
            f"operator type '{type_name}' cannot run tasks in this version (use one of: {known})"
        ) from None
