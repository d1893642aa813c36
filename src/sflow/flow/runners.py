"""Where a task's function runs: in this process, or through a `sflow.dispatch` executor.

A runner has two verbs: `call` (one invocation) and `map` (one invocation per item, filling
`out[i]`, each item with its own retries and timeout). The `local` environment runs in process: async functions directly on the loop,
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from sflow.dispatch.config import Environment
from sflow.dispatch.errors import DispatchCancelled, DispatchTimeout
from sflow.dispatch.executor import Call, Executor, Handle
from sflow.flow.errors import TaskTimeout
from sflow.flow.fanout import (
    ItemRetry,
    default_threads,
    map_async,
    map_items,
    map_threads,
    note_item,
    own_thread,
)
from sflow.flow.resolve import ResolvedTask
from sflow.slurm.journal import SlurmJournal

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
        rule: ItemRetry,
    ) -> None: ...

    async def aclose(self) -> None: ...


CallKey = str | tuple[str, int]  # a task, or one item of a mapped task


class LocalRunner:
    """In process: async functions on the running loop, sync ones in threads.

    A sync function cannot be interrupted: after a timeout its call goes on in its thread.
    The next attempt of the same task (or map item) waits until it has returned, so two
    attempts of one never run at once; that wait counts against the new attempt's own
    timeout. A map item with a timeout runs each attempt in a thread of its own, so a call
    that timed out holds up no other item.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._threads: dict[CallKey, concurrent.futures.Future[Any]] = {}  # its last call's thread

    async def call(self, task: ResolvedTask, values: Mapping[str, Any], info: dict[str, Any]) -> Any:
        fn = task.spec.fn
        kwargs = task.kwargs(values)
        if task.spec.is_async:
            return await fn(**kwargs)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.max_workers or max(32, default_threads()), thread_name_prefix="sflow-task"
            )
        bound = functools.partial(contextvars.copy_context().run, fn, **kwargs)
        pool = self._pool
        return await self._in_thread(task.name, lambda: pool.submit(bound), info)

    async def _in_thread(
        self, key: CallKey, start: Callable[[], concurrent.futures.Future[Any]], info: dict[str, Any]
    ) -> Any:
        """Start a sync call once the key's earlier call has returned; await its value."""
        earlier = self._threads.get(key)
        if earlier is not None and not earlier.done():
            info["waiting"] = "for an earlier attempt's call, still running in its thread"
            await asyncio.wait({_watched(earlier)})
            del info["waiting"]
        running = self._threads[key] = start()
        value = await asyncio.wrap_future(running)  # a timeout stops the wait, not the thread
        return await value if inspect.isawaitable(value) else value

    async def map(
        self,
        task: ResolvedTask,
        values: Mapping[str, Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        info: dict[str, Any],
        rule: ItemRetry,
    ) -> None:
        call = task.item_caller(values)
        threads = task.max_concurrent or self.max_workers or default_threads()
        if not rule.needed:
            if task.spec.is_async:
                await map_async(task.name, call, items, indices, out, task.max_concurrent)
            else:
                await map_threads(task.name, call, items, indices, out, threads)
            return

        # with a timeout, a call that timed out runs on: each attempt gets a thread of its own, so
        # it holds up no other item; without one, every attempt has returned before the next
        pool = None
        if not task.spec.is_async and rule.timeout is None:
            pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=f"sflow-{task.name}")

        def attempt(index: int) -> Callable[[dict[str, Any]], Awaitable[Any]]:
            item = items[index]
            if task.spec.is_async:
                return lambda _info: call(item)
            bound = functools.partial(contextvars.copy_context().run, call, item)
            name = f"sflow-{task.name}-{index}"
            start = (lambda: pool.submit(bound)) if pool is not None else (lambda: own_thread(bound, name))
            return lambda info: self._in_thread((task.name, index), start, info)

        limit = task.max_concurrent if task.spec.is_async else threads
        try:
            await map_items(task.name, attempt, len(items), indices, out, limit, rule)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            for index in indices:
                self._threads.pop((task.name, index), None)

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
        rule: ItemRetry,
    ) -> None:
        """Submit the items together; then, after the retry interval, the failed ones together.

        Each round is one `submit_many` (one job array on Slurm) and ends when all its items
        have; the last round allowed ends at its first failure, which is raised.
        """
        base = task.kwargs(values)
        pending = list(indices)
        submitted: list[Handle] = []
        number = 1
        while pending:
            calls = [self._call(task, *task.item_args(base, items[i])) for i in pending]
            handles = await self.executor.submit_many(calls)
            submitted.extend(handles)
            _describe(info, submitted)
            last = number > rule.policy.count
            try:
                failed = await _failures(handles, first_only=last)
                for at in failed:
                    retried = not last and not isinstance(handles[at].exception(), DispatchCancelled)
                    rule.report(pending[at], number, handles[at].exception(), retried)
                    if not retried:
                        await _raise_item(task, handles[at], pending[at], len(items), number)
            finally:
                live = [h for h in handles if not h.done()]
                if live:
                    await self.executor.cancel_many(live)
                for i, handle in zip(pending, handles, strict=True):
                    if handle.done() and handle.exception() is None:
                        out[i] = await handle.result()
                        if number > 1:
                            rule.report(i, number, None, False)
                _describe(info, submitted)
            if failed:
                await asyncio.sleep(rule.policy.delay(number - 1))
            pending = [pending[at] for at in failed]
            number += 1

    async def aclose(self) -> None:
        await self.executor.aclose()


async def _raise_item(task: ResolvedTask, handle: Handle, index: int, total: int, attempts: int) -> None:
    """Raise the item's own exception (the remote one), noting which item and its attempts."""
    try:
        await handle.result()
    except DispatchTimeout as exc:
        if task.timeout is None:
            raise
        error = TaskTimeout(task.name, task.timeout, attempts, item=index)
        note_item(error, task.name, index, total, attempts)
        raise error from exc
    except BaseException as exc:
        note_item(exc, task.name, index, total, attempts)
        raise


async def _failures(handles: Sequence[Handle], first_only: bool) -> list[int]:
    """Positions of the failed handles once all are done, or of the first failure (`first_only`)."""
    if not handles:
        return []
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed: list[int] = []
    remaining = len(handles)

    def on_done(at: int, handle: Handle) -> None:
        nonlocal remaining
        if waiter.done():
            return
        remaining -= 1
        if handle.exception() is not None:
            failed.append(at)
            if first_only:
                waiter.set_result(None)
                return
        if remaining == 0:
            waiter.set_result(None)

    for at, handle in enumerate(handles):
        handle.add_done_callback(functools.partial(on_done, at))
    await waiter
    return sorted(failed)


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
    """One runner per environment the flow uses, opened on first use and closed together.

    Executors that submit Slurm jobs record each one in `journal` (the run's `slurm.jsonl`) the
    moment it exists, so `sflow cancel RUN` stops what a killed flow left.
    """

    def __init__(self, journal: SlurmJournal | None = None) -> None:
        self.journal = journal
        self._opening: dict[tuple[str, int | None], asyncio.Future[Runner]] = {}

    async def get(self, task: ResolvedTask) -> Runner:
        env = task.environment
        throttle = None
        if task.mapped and not task.local and task.max_concurrent != env.max_concurrent:
            throttle = task.max_concurrent  # a job-array throttle is per executor: give it its own
            env = dataclasses.replace(env, max_concurrent=throttle)
        key = (env.name, throttle)
        if key not in self._opening:
            self._opening[key] = asyncio.ensure_future(_open(env, self.journal))
        return await asyncio.shield(self._opening[key])

    async def aclose(self) -> None:
        """Close every runner (cancelling what still runs there, e.g. scancel) concurrently."""
        opening = list(self._opening.values())
        if opening:
            await asyncio.wait(opening)
        runners = [f.result() for f in opening if not f.cancelled() and f.exception() is None]
        await asyncio.gather(*(r.aclose() for r in runners), return_exceptions=True)
        if self.journal is not None:
            self.journal.close()


async def _open(env: Environment, journal: SlurmJournal | None) -> Runner:
    if env.executor == "local":
        max_workers = env.executor_config.get("max_workers")
        return LocalRunner(max_workers if isinstance(max_workers, int) else None)
    executor = env.create_executor()
    if hasattr(executor, "journal"):  # it submits Slurm jobs
        executor.journal = journal
    await executor.start()
    return ExecutorRunner(executor)
