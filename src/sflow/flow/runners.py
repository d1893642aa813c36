"""Where a task's function runs: in this process, or through a `sflow.dispatch` executor.

A runner has two verbs: `call` (one invocation) and `map` (one invocation per item, filling
`out[i]`). The `local` environment runs in process: async functions directly on the loop,
sync functions in threads. Every other environment goes through its dispatch executor,
one `submit` per call and one `submit_many` per map (a Slurm job array).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sflow.dispatch.config import Environment
from sflow.dispatch.executor import Call, Executor, Handle
from sflow.flow.fanout import default_threads, map_async, map_threads, note_item
from sflow.flow.resolve import ResolvedTask

MAX_JOB_LOGS = 100  # job log paths listed per task in the run record


class Runner(Protocol):
    async def call(self, task: ResolvedTask, values: Mapping[str, Any], info: dict[str, Any]) -> Any: ...

    async def map(
        self,
        task: ResolvedTask,
        values: Mapping[str, Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        info: dict[str, Any],
    ) -> None: ...

    async def aclose(self) -> None: ...


class LocalRunner:
    """In process: async functions on the running loop, sync ones on a thread pool.

    A sync function cannot be interrupted: after a timeout its call goes on in its thread.
    The next attempt of the same task (or of a map's items) waits until it has returned, so
    two attempts of one task never run at once; that wait counts against the new attempt's
    own timeout.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._threads: dict[str, list[concurrent.futures.Future[Any]]] = {}  # task -> its calls' threads

    async def call(self, task: ResolvedTask, values: Mapping[str, Any], info: dict[str, Any]) -> Any:
        fn = task.spec.fn
        kwargs = task.kwargs(values)
        if task.spec.is_async:
            return await fn(**kwargs)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.max_workers or max(32, default_threads()), thread_name_prefix="sflow-task"
            )
        await self._earlier_attempt_returned(task.name, info)
        bound = functools.partial(contextvars.copy_context().run, fn, **kwargs)
        running = self._pool.submit(bound)
        self._threads[task.name] = [running]
        value = await asyncio.wrap_future(running)  # a timeout stops the wait, not the thread
        return await value if inspect.isawaitable(value) else value

    async def _earlier_attempt_returned(self, task: str, info: dict[str, Any]) -> None:
        """Wait until the threads of the task's earlier attempt are done (a timed-out call runs on)."""
        running = [_watched(f) for f in self._threads.get(task, ()) if not f.done()]
        if running:
            info["waiting"] = "for an earlier attempt's call, still running in its thread"
            await asyncio.wait(running)
            del info["waiting"]

    async def map(
        self,
        task: ResolvedTask,
        values: Mapping[str, Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        info: dict[str, Any],
    ) -> None:
        call = task.item_caller(values)
        if task.spec.is_async:
            await map_async(task.name, call, items, indices, out, task.max_concurrent)
        else:
            await self._earlier_attempt_returned(task.name, info)
            threads = task.max_concurrent or self.max_workers or default_threads()
            running = self._threads[task.name] = []
            await map_threads(task.name, call, items, indices, out, threads, running)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _watched(thread: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
    """An asyncio future following `thread`; its outcome (an earlier attempt's) is not reported again."""
    future = asyncio.wrap_future(thread)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class ExecutorRunner:
    """Through a started dispatch executor; unfinished calls are cancelled, never left behind."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _call(self, task: ResolvedTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """A call named after the task: the Slurm job (or array) name says which task it is."""
        options = task.spec.options
        return Call(
            task.spec.fn, args, kwargs, name=task.name, resources=options.resources, timeout=task.timeout
        )

    async def call(self, task: ResolvedTask, values: Mapping[str, Any], info: dict[str, Any]) -> Any:
        handle = await self.executor.submit(self._call(task, (), task.kwargs(values)))
        _describe(info, [handle])
        try:
            return await handle.result()
        finally:
            if not handle.done():
                await self.executor.cancel(handle)
            _describe(info, [handle])

    async def map(
        self,
        task: ResolvedTask,
        values: Mapping[str, Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        info: dict[str, Any],
    ) -> None:
        base = task.kwargs(values)
        calls = [self._call(task, *task.item_args(base, items[i])) for i in indices]
        handles = await self.executor.submit_many(calls)
        _describe(info, handles)
        try:
            failed = await _first_failure(handles)
            if failed is not None:
                index = indices[handles.index(failed)]
                try:
                    await failed.result()
                except BaseException as exc:
                    note_item(exc, task.name, index, len(items))
                    raise
        finally:
            live = [h for h in handles if not h.done()]
            if live:
                await self.executor.cancel_many(live)
            for i, handle in zip(indices, handles, strict=True):
                if handle.done() and handle.exception() is None:
                    out[i] = await handle.result()
            _describe(info, handles)

    async def aclose(self) -> None:
        await self.executor.aclose()


async def _first_failure(handles: Sequence[Handle]) -> Handle | None:
    """Wait until every handle succeeded (None) or one failed (that handle)."""
    if not handles:
        return None
    waiter: asyncio.Future[Handle | None] = asyncio.get_running_loop().create_future()
    remaining = len(handles)

    def on_done(handle: Handle) -> None:
        nonlocal remaining
        if waiter.done():
            return
        if handle.exception() is not None:
            waiter.set_result(handle)
            return
        remaining -= 1
        if remaining == 0:
            waiter.set_result(None)

    for handle in handles:
        handle.add_done_callback(on_done)
    return await waiter


def _describe(info: dict[str, Any], handles: Sequence[Handle]) -> None:
    """Job ids and log paths for the run record (arrays listed once, logs capped)."""
    jobs = list(dict.fromkeys(h.job_id.split("_")[0] for h in handles if h.job_id))
    logs = [h.log_path for h in handles if h.log_path]
    if jobs:
        info["job_ids"] = jobs
    if logs:
        info["job_logs"] = logs[:MAX_JOB_LOGS]
        if len(logs) > MAX_JOB_LOGS:
            info["job_logs_total"] = len(logs)
    hosts = sorted({h.host for h in handles if h.host})
    if hosts:
        info["hosts"] = hosts[:MAX_JOB_LOGS]


class Runners:
    """One runner per environment the flow uses, opened on first use and closed together."""

    def __init__(self) -> None:
        self._opening: dict[tuple[str, int | None], asyncio.Future[Runner]] = {}

    async def get(self, task: ResolvedTask) -> Runner:
        env = task.environment
        throttle = None
        if task.mapped and not task.local and task.max_concurrent != env.max_concurrent:
            throttle = task.max_concurrent  # a job-array throttle is per executor: give it its own
            env = dataclasses.replace(env, max_concurrent=throttle)
        key = (env.name, throttle)
        if key not in self._opening:
            self._opening[key] = asyncio.ensure_future(_open(env))
        return await asyncio.shield(self._opening[key])

    async def aclose(self) -> None:
        """Close every runner (cancelling what still runs there, e.g. scancel) concurrently."""
        opening = list(self._opening.values())
        if opening:
            await asyncio.wait(opening)
        runners = [f.result() for f in opening if not f.cancelled() and f.exception() is None]
        await asyncio.gather(*(r.aclose() for r in runners), return_exceptions=True)


async def _open(env: Environment) -> Runner:
    if env.executor == "local":
        max_workers = env.executor_config.get("max_workers")
        return LocalRunner(max_workers if isinstance(max_workers, int) else None)
    executor = env.create_executor()
    await executor.start()
    return ExecutorRunner(executor)
