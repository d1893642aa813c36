"""The `subprocess` executor: each call runs `python -m sflow.dispatch.worker` as a local process.

It exercises exactly the path a Slurm job takes (payload in the environment, signed
callbacks, result file fallback, heartbeats, SIGTERM handling) without a scheduler, so it
is both a faithful test double for remote execution and a way to isolate calls that may
crash the interpreter. Each worker is started and stopped as a YAML task's process is
(`sflow.proc.attempt`): its own session, TERM to the whole group, a grace, then KILL.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.dispatch.callback import CallbackServer
from sflow.dispatch.executor import Handle
from sflow.dispatch.options import parse_options
from sflow.dispatch.payload import INDEX_ENV
from sflow.dispatch.remote import RemoteExecutor, RemoteOptions
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.groups import signal_group
from sflow.proc.spawn import LaunchSpec


@dataclass
class SubprocessOptions(RemoteOptions):
    """`executor_config` of the subprocess executor (plus every `RemoteOptions` key)."""

    command: str | list[str] | None = None  # default: this interpreter -m sflow.dispatch.worker
    kill_grace: float = 5.0  # seconds between SIGTERM and SIGKILL on cancel


def default_worker_command() -> list[str]:
    """The worker command: the caller's own interpreter, so versions match by construction."""
    return [sys.executable, "-m", "sflow.dispatch.worker"]


class SubprocessExecutor(RemoteExecutor):
    """Runs every call in its own worker process on this host."""

    name = "subprocess"
    resource_keys = None  # nothing to reserve locally; accept and ignore

    def __init__(
        self,
        config: Mapping[str, Any] | SubprocessOptions | None = None,
        *,
        server: CallbackServer | None = None,
    ) -> None:
        options = parse_options(SubprocessOptions, config, "subprocess executor")
        super().__init__(options, server=server)
        self.options: SubprocessOptions = options
        cmd = options.command or default_worker_command()
        self.command = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        self._slots = asyncio.Semaphore(options.max_concurrent) if options.max_concurrent else None
        self._workers: dict[str, ProcessAttempt] = {}

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> None:
        parse_options(SubprocessOptions, config, "subprocess executor")

    async def _launch(self, handles: list[Handle]) -> None:
        env = {**os.environ, **(await self.worker_env(handles))}
        for index, handle in enumerate(handles):
            self.spawn(self._run_one(handle, {**env, INDEX_ENV: str(index)}))

    async def _run_one(self, handle: Handle, env: dict[str, str]) -> None:
        if self._slots is not None:
            async with self._slots:
                await self._run_process(handle, env)
        else:
            await self._run_process(handle, env)

    async def _run_process(self, handle: Handle, env: dict[str, str]) -> None:
        if handle.done():  # cancelled while waiting for a slot
            return
        log_path = self.run_dir / "logs" / f"{handle.call_id}.log"
        worker = await ProcessAttempt.start(LaunchSpec(self.command, env, Path.cwd(), log_path))
        handle.job_id, handle.log_path = f"pid:{worker.proc.pid}", str(log_path)
        self._workers[handle.call_id] = worker
        handle.mark_started()  # the worker process runs (a lost task_started must not matter)
        try:
            outcome = await worker.wait()
        except asyncio.CancelledError:  # aclose: never leave the worker behind
            signal_group(worker.proc.pid, signal.SIGKILL)
            raise
        finally:
            self._workers.pop(handle.call_id, None)
        code = outcome.exit_code or 0
        state = (
            "COMPLETED" if code == 0 else f"KILLED({signal.Signals(-code).name})" if code < 0 else "FAILED"
        )
        await self.job_ended(handle, state, f"exit code {code}", str(log_path))

    async def _terminate(self, handles: list[Handle]) -> None:
        for handle in handles:
            worker = self._workers.get(handle.call_id)
            if worker is not None:
                self.spawn(worker.stop(self.options.kill_grace))

    async def _close(self) -> None:
        workers = list(self._workers.values())
        if workers:  # already sent SIGTERM by the cancel in aclose; give them their grace
            await asyncio.gather(*(w.stop(self.options.kill_grace) for w in workers))
        await super()._close()
