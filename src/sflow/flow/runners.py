"""Where a task's function runs: in this process, or through a `sflow.dispatch` executor.

A runner has two verbs: `call` (one invocation) and `map` (one invocation per item, filling
`out[i]`, each item with its own retries and timeout). The `local` environment runs in
process through its executor's `InProcess` (async functions on the loop, sync ones in
threads), called directly: a handle per call or per item would cost more than a trivial
item. Every other environment goes through its dispatch executor, one `submit` per call
and one `submit_many` per map (a Slurm job array).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from sflow.dispatch.config import Environment
from sflow.dispatch.errors import DispatchCancelled, DispatchTimeout
from sflow.dispatch.executor import Call, Executor, Handle
from sflow.dispatch.in_process import OwnThreads
from sflow.dispatch.local import LocalExecutor
from sflow.flow.errors import TaskTimeout
from sflow.flow.fanout import ItemRetry, map_items, note_item
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


class InProcessRunner:
    """The `local` environment: its executor's in-process runner, called directly (no handles).

    A task's call and each attempt of a map item are keyed by the task (and item), so a
    sync call that timed out and still runs in its thread never overlaps the next attempt
    (`sflow.dispatch.in_process`); that wait counts against the new attempt's own timeout.
    A map item with a timeout runs each attempt in a thread of its own, so a call that
    timed out holds up no other item. A map without per-item rules takes the fast path.
    """

    def __init__(self, executor: LocalExecutor) -> None:
        self.executor = executor
        self.in_process = executor.in_process

    async def call(self, task: ResolvedTask, values: Mapping[str, Any], info: dict[str, Any]) -> Any:
        spec = task.spec
        kwargs = task.kwargs(values)
        return await self.in_process.call(
            spec.fn, (), kwargs, is_async=spec.is_async, key=task.name, info=info
        )

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
        is_async = task.spec.is_async
        name = f"sflow-{task.name}"
        if not rule.needed:

            def failed(exc: BaseException, index: int) -> None:
                note_item(exc, task.name, index, len(items))

            await self.in_process.map(
                call,
                items,
                indices,
                out,
                is_async=is_async,
                limit=task.max_concurrent,
                name=name,
                failed=failed,
            )
            return
        threads = self.in_process.thread_count(task.max_concurrent)
        with contextlib.ExitStack() as stack:
            # with a timeout, a call that timed out runs on: each attempt gets a thread of its own,
            # so it holds up no other item; without one, every attempt has returned before the next
            pool = None
            if not is_async and rule.timeout is None:
                pool = stack.enter_context(self.in_process.threads(threads, name))

            def attempt(index: int) -> Callable[[dict[str, Any]], Awaitable[Any]]:
                item, key = items[index], (task.name, index)
                runs_on = pool if pool is not None or is_async else OwnThreads(f"{name}-{index}")
                return lambda info: self.in_process.call(
                    call, (item,), is_async=is_async, key=key, info=info, threads=runs_on
                )

            limit = task.max_concurrent if is_async else threads
            await map_items(task.name, attempt, len(items), indices, out, limit, rule)

    async def aclose(self) -> None:
        await self.executor.aclose()


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
    executor = env.create_executor()
    if hasattr(executor, "journal"):  # it submits Slurm jobs
        executor.journal = journal
    await executor.start()
    if isinstance(executor, LocalExecutor):
        return InProcessRunner(executor)
    return ExecutorRunner(executor)
