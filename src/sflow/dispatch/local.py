"""The `local` executor: run calls in this process.

Async callables run as tasks on the running event loop; sync callables run in a thread
pool so they never block the loop. Useful for tests, laptops and cheap tasks; a thread
that already runs cannot be interrupted, so cancelling it only stops waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sflow.dispatch.executor import Executor, Handle
from sflow.dispatch.options import parse_options


@dataclass
class LocalOptions:
    """`executor_config` of the local executor."""

    max_workers: int | None = None  # thread-pool size for sync callables (None: Python's default)
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
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.options.max_concurrent) if self.options.max_concurrent else None
        self._running: dict[str, asyncio.Task[Any]] = {}

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> None:
        parse_options(LocalOptions, config, "local executor")

    async def _start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.options.max_workers, thread_name_prefix="sflow-local"
        )

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
            if inspect.iscoroutinefunction(call.fn):
                value = await call.fn(*call.args, **call.kwargs)
            else:
                bound = functools.partial(call.fn, *call.args, **call.kwargs)
                value = await asyncio.get_running_loop().run_in_executor(self._pool, bound)
                if inspect.isawaitable(value):  # a sync wrapper returning a coroutine
                    value = await value
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
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
