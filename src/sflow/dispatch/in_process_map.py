"""Many items of one function in this process, fast: the plain path of a flow's map.

Making each item a dispatch `Handle` (or an engine unit) would cost more than a trivial
item itself. Async items run as tasks on the loop (all at once, eager on Python 3.12+, or
`limit` worker coroutines pulling from a shared iterator); sync items run on a small
thread pool whose threads each pull indices in a loop, so the per-item cost is a function
call, not a future and a loop wake-up.

Both write `out[i]` for each index they complete. The first exception stops the map and is
raised as it was; `failed(exc, i)` hears of it first (to note which item raised).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any

Failed = Callable[[BaseException, int], None]


async def map_async(
    call: Callable[[Any], Coroutine[Any, Any, Any]],
    items: Sequence[Any],
    indices: Sequence[int],
    out: list[Any],
    limit: int | None,
    failed: Failed,
) -> None:
    """`out[i] = await call(items[i])` for every index, at most `limit` at once."""
    if limit is None or limit >= len(indices):
        start = _task_starter()
        futures = [start(call(items[i])) for i in indices]
        try:
            values = await asyncio.gather(*futures)
        except BaseException as exc:
            await _cancel(futures)
            _keep_done(futures, indices, out)
            if not isinstance(exc, asyncio.CancelledError):
                failed(exc, _failed_index(futures, indices, exc))
            raise
        for i, value in zip(indices, values, strict=True):
            out[i] = value
        return
    shared = iter(indices)
    workers = [asyncio.ensure_future(_worker(call, items, shared, out, failed)) for _ in range(limit)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        await _cancel(workers)
        raise


def _task_starter() -> Callable[[Coroutine[Any, Any, Any]], asyncio.Future[Any]]:
    """Python 3.12+: eager tasks (an item that never suspends costs no loop round trip)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return loop.create_task


async def _worker(
    call: Callable[[Any], Awaitable[Any]],
    items: Sequence[Any],
    shared: Iterator[int],
    out: list[Any],
    failed: Failed,
) -> None:
    for i in shared:
        try:
            out[i] = await call(items[i])
        except Exception as exc:
            failed(exc, i)
            raise


async def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)


def _keep_done(futures: Sequence[asyncio.Future[Any]], indices: Sequence[int], out: list[Any]) -> None:
    for i, future in zip(indices, futures, strict=True):
        if future.done() and not future.cancelled() and future.exception() is None:
            out[i] = future.result()


def _failed_index(futures: Sequence[asyncio.Future[Any]], indices: Sequence[int], exc: BaseException) -> int:
    for i, future in zip(indices, futures, strict=True):
        if future.done() and not future.cancelled() and future.exception() is exc:
            return i
    return -1


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _ThreadMap:
    """The shared state of one sync map: an index iterator, a stop flag, the first error."""

    def __init__(
        self,
        call: Callable[[Any], Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        failed: Failed,
        loop: asyncio.AbstractEventLoop,
    ):
        self.call = call
        self.items = items
        self.out = out
        self.failed = failed
        self.stop = False
        self.error: BaseException | None = None
        self._indices = iter(indices)
        self._lock = threading.Lock()
        self._loop = loop
        self._context = contextvars.copy_context()  # the caller's; each item runs in a copy of it
        self._awaiting: set[concurrent.futures.Future[Any]] = set()

    def work(self) -> None:
        """One thread's loop: take the next index, run it, until done, stopped or failed."""
        call, items, out, lock, indices = self.call, self.items, self.out, self._lock, self._indices
        context = self._context
        while not self.stop:
            with lock:
                i = next(indices, -1)
            if i < 0:
                return
            try:
                value = context.copy().run(call, items[i])
                out[i] = self._await(value) if inspect.isawaitable(value) else value
            except BaseException as exc:
                self._fail(exc, i)
                return

    def _await(self, awaitable: Awaitable[Any]) -> Any:
        """A sync function returned a coroutine (a wrapper of an async one): run it on the loop.

        The thread waits for it, so the item keeps its slot and its place in the map's failure
        handling, exactly as a single sync call's coroutine is awaited.
        """
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._loop)
        with self._lock:
            self._awaiting.add(future)
            if self.stop:
                future.cancel()
        try:
            return future.result()
        finally:
            with self._lock:
                self._awaiting.discard(future)

    def cancel_awaiting(self) -> None:
        """Stop the map, and the coroutines its items handed to the loop."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        self.stop = True
        for future in self._awaiting:
            future.cancel()

    def _fail(self, exc: BaseException, index: int) -> None:
        with self._lock:
            if self.error is None:
                self.failed(exc, index)
                self.error = exc
            self._stop_locked()


async def map_threads(
    call: Callable[[Any], Any],
    items: Sequence[Any],
    indices: Sequence[int],
    out: list[Any],
    threads: int,
    name: str,
    failed: Failed,
) -> None:
    """`out[i] = call(items[i])` for every index on `threads` threads (never blocks the loop).

    Each item runs in a copy of the caller's context, as a single call does. A coroutine
    returned by `call` is awaited on the loop, its thread waiting for it. When cancelled, threads stop after
    their current item; a running item cannot be interrupted, so it finishes in the background.
    """
    if not indices:
        return
    count = max(1, min(threads, len(indices)))
    loop = asyncio.get_running_loop()
    state = _ThreadMap(call, items, indices, out, failed, loop)
    pool = concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix=name)
    try:
        running = [pool.submit(state.work) for _ in range(count)]
        await asyncio.gather(*(asyncio.wrap_future(t) for t in running))
    finally:
        state.cancel_awaiting()
        pool.shutdown(wait=False, cancel_futures=True)
    if state.error is not None:
        raise state.error
