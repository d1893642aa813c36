"""The `local` executor: run calls in this process, as handles.

Each call runs through `sflow.dispatch.in_process`, as a flow's in-process tasks do: async
callables on the running event loop, sync ones in a thread pool (in a copy of the
submitter's context variables) so they never block the loop. Useful for tests, laptops and
cheap tasks. A thread that already runs cannot be interrupted, so cancelling (or timing
out) a sync call only stops waiting for it; the next call with the same `Call.key` waits
until it has returned.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sflow.dispatch.executor import Executor, Handle
from sflow.dispatch.in_process import InProcess
from sflow.dispatch.options import parse_options


@dataclass
class LocalOptions:
    """`executor_config` of the local executor."""

    max_workers: int | None = None  # thread-pool size for sync callables (None: at least 32)
    max_concurrent: int | None = None  # calls running at once, sync and async together
    timeout: float | None = None  # default per-call timeout in seconds


class LocalExecutor(Executor):
    """In-process executor: async functions on the loop, sync functions in threads."""

    name = "local"
    resource_keys = None  # resources mean nothing in-process; accept and ignore them
    reports_start = True  # a call's timeout counts once it holds a max_concurrent slot

    def __init__(self, config: Mapping[str, Any] | LocalOptions | None = None) -> None:
        self.options = parse_options(LocalOptions, config, "local executor")
        super().__init__(default_timeout=self.options.timeout)
        self.in_process = InProcess(self.options.max_workers)
        self._slots = asyncio.Semaphore(self.options.max_concurrent) if self.options.max_concurrent else None
        self._running: dict[str, asyncio.Task[Any]] = {}

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> None:
        parse_options(LocalOptions, config, "local executor")

    async def _launch(self, handles: list[Handle]) -> None:
        for handle in handles:
            task = asyncio.create_task(self._run(handle), name=f"sflow-local-{handle.name}")
            self._running[handle.call_id] = task
            task.add_done_callback(functools.partial(self._forget, handle.call_id))

    def _forget(self, call_id: str, _task: object) -> None:
        self._running.pop(call_id, None)

    async def _run(self, handle: Handle) -> None:
        if self._slots is not None:
            async with self._slots:
                await self._run_now(handle)
        else:
            await self._run_now(handle)

    async def _run_now(self, handle: Handle) -> None:
        call = handle.call
        handle.host = "localhost"
        handle.mark_started()
        try:
            value = await self.in_process.call(call.fn, call.args, call.kwargs, key=call.key)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the callable's own failure, whatever it is
            handle.set_exception(exc)
        else:
            handle.set_result(value)

    async def _terminate(self, handles: list[Handle]) -> None:
        for handle in handles:
            task = self._running.pop(handle.call_id, None)
            if task is not None:
                task.cancel()

    async def _close(self) -> None:
        self.in_process.close()
