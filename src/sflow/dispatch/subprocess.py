"""The `subprocess` executor: each call runs `python -m sflow.backend_worker` as a local process.

It exercises exactly the path a Slurm job takes (payload in the environment, signed
callbacks, result file fallback, heartbeats, SIGTERM handling) without a scheduler, so it
is both a faithful test double for remote execution and a way to isolate calls that may
crash the interpreter. Each process gets its own session so cancellation reaches its
children too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sflow.dispatch.callback import CallbackServer
from sflow.dispatch.executor import Handle
from sflow.dispatch.options import parse_options
from sflow.dispatch.payload import INDEX_ENV
from sflow.dispatch.remote import RemoteExecutor, RemoteOptions


@dataclass
class SubprocessOptions(RemoteOptions):
    """`executor_config` of the subprocess executor (plus every `RemoteOptions` key)."""

    command: str | list[str] | None = None  # default: this interpreter -m sflow.backend_worker
    kill_grace: float = 5.0  # seconds between SIGTERM and SIGKILL on cancel


def default_worker_command() -> list[str]:
    """The worker command: the caller's own interpreter, so versions match by construction."""
    return [sys.executable, "-m", "sflow.backend_worker"]


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
        self._procs: dict[str, asyncio.subprocess.Process] = {}

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
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        handle.job_id, handle.log_path = f"pid:{proc.pid}", str(log_path)
        self._procs[handle.call_id] = proc
        handle.mark_started()  # the worker process runs (a lost task_started must not matter)
        try:
            code = await proc.wait()
        finally:
            self._procs.pop(handle.call_id, None)
            if proc.returncode is None:  # cancelled (aclose): never leave the worker behind
                _signal_group(proc, signal.SIGKILL)
        state = (
            "COMPLETED" if code == 0 else f"KILLED({signal.Signals(-code).name})" if code < 0 else "FAILED"
        )
        await self.job_ended(handle, state, f"exit code {code}", str(log_path))

    async def _terminate(self, handles: list[Handle]) -> None:
        procs = [p for h in handles if (p := self._procs.get(h.call_id)) is not None]
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
            _signal_group(proc, signal.SIGCONT)  # a stopped (frozen) worker gets the TERM now
        if procs:
            self.spawn(self._kill_after_grace(procs))

    async def _kill_after_grace(self, procs: list[asyncio.subprocess.Process]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), self.options.kill_grace)
        except asyncio.TimeoutError:
            pass
        finally:
            for proc in procs:
                if proc.returncode is None:
                    _signal_group(proc, signal.SIGKILL)

    async def _close(self) -> None:
        procs = list(self._procs.values())
        if procs:  # already sent SIGTERM by the cancel in aclose; give them their grace
            await self._kill_after_grace(procs)
        await super()._close()


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
