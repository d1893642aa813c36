"""Running one mapped task's items in this process, fast.

A map is one engine unit that fans out internally: making each item a unit (or even a
dispatch `Handle`) would cost more than a trivial item itself. Async items run as tasks
on the loop (all at once, or `limit` worker coroutines pulling from a shared iterator);
sync items run on a small thread pool whose threads each pull indices in a loop, so the
per-item cost is a function call, not a future and a loop wake-up.

Both write `out[i]` for each index they complete. The first exception stops the map and is
raised as it was, with a note naming the item.

`retries` and `timeout` of a map apply to each item (`ItemRetry`): an item is attempted
again on its own, and only its own attempt is timed out. Items with such a rule run one
coroutine each (with a timeout, a sync item's attempt in a thread of its own), which costs
more than the plain path above, so that path is kept for maps without one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sflow.engine import RetryPolicy
from sflow.flow.errors import TaskTimeout, add_note

MISSING: Any = object()  # an item without a result yet


def default_threads() -> int:
    """Threads for sync items when nothing says otherwise (Python's thread-pool default)."""
    return min(32, (os.cpu_count() or 1) + 4)


def note_item(exc: BaseException, task: str, index: int, total: int, attempts: int = 1) -> None:
    """Say which item raised (and after how many attempts), without changing the exception."""
    add_note(exc, f"sflow: raised by item {index} of {total} of mapped task '{task}'")
    if attempts > 1:
        add_note(exc, f"sflow: item {index} of mapped task '{task}' failed on all {attempts} attempts")


NEVER_CALLED = "this attempt never called the function: an earlier attempt's call was still running"

ItemReport = Callable[[int, int, BaseException | None, bool], None]


def _unheard(index: int, attempt: int, error: BaseException | None, retried: bool) -> None:
    return None


@dataclass(frozen=True)
class ItemRetry:
    """Each item's own attempts: `policy` retries, `timeout` seconds per attempt.

    `report(index, attempt, error, retried)` hears of every failed attempt (`retried` says
    whether another follows) and of an item succeeding after a failure (`error` None).
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    report: ItemReport = _unheard

    @property
    def needed(self) -> bool:
        """Whether items need attempts of their own (else the fast path runs them)."""
        return self.policy.count > 0 or self.timeout is not None


async def within(work: Awaitable[Any], timeout: float, timed_out: Callable[[], BaseException]) -> Any:
    """Await `work`; after `timeout` seconds cancel it, wait until it is cancelled, raise `timed_out()`."""
    inner = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        inner.cancel()
        await asyncio.wait({inner})
        raise
    if not done:
        inner.cancel()
        await asyncio.wait({inner})
        raise timed_out()
    return inner.result()


async def map_items(
    task: str,
    attempt: Callable[[int], Callable[[dict[str, Any]], Awaitable[Any]]],
    total: int,
    indices: Sequence[int],
    out: list[Any],
    limit: int | None,
    rule: ItemRetry,
) -> None:
    """`out[i]` for every index, each item attempted on its own until it succeeds or `rule` gives up.

    `attempt(i)(info)` starts one attempt of item `i`; it sets `info["waiting"]` while it waits
    for an earlier attempt's call to return (a sync function cannot be interrupted), which
    counts against its timeout. At most `limit` attempts run at once. A failed item goes to
    the back of the queue after its retry interval, so it holds no slot while it waits. The
    first item out of attempts stops the map; its error is raised with notes naming it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for i in indices:
        queue.put_nowait((i, 1))
    left = len(indices)
    all_done: asyncio.Future[None] = loop.create_future()
    timers: list[asyncio.TimerHandle] = []

    async def worker() -> None:
        nonlocal left
        while True:
            i, number = await queue.get()
            try:
                out[i] = await _timed(task, i, number, rule.timeout, attempt(i))
            except Exception as exc:
                retried = number <= rule.policy.count
                rule.report(i, number, exc, retried)
                if not retried:
                    note_item(exc, task, i, total, number)
                    raise
                delay = rule.policy.delay(number - 1)
                timers.append(loop.call_later(delay, queue.put_nowait, (i, number + 1)))
                continue
            if number > 1:
                rule.report(i, number, None, False)
            left -= 1
            if left == 0:
                all_done.set_result(None)

    count = len(indices) if limit is None else max(1, min(limit, len(indices)))
    workers = [asyncio.ensure_future(worker()) for _ in range(count)] if indices else []
    if not workers:
        return
    try:
        await asyncio.wait([all_done, *workers], return_when=asyncio.FIRST_COMPLETED)
        for w in workers:
            if w.done():
                w.result()  # a worker ends only by raising an item's last error
    finally:
        for timer in timers:
            timer.cancel()
        await _cancel(workers)
        all_done.cancel()


async def _timed(
    task: str,
    index: int,
    number: int,
    timeout: float | None,
    attempt: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Any:
    info: dict[str, Any] = {}
    if timeout is None:
        return await attempt(info)
    return await within(
        attempt(info),
        timeout,
        lambda: TaskTimeout(task, timeout, number, NEVER_CALLED if info.get("waiting") else "", index),
    )


async def map_async(
    task: str,
    call: Callable[[Any], Coroutine[Any, Any, Any]],
    items: Sequence[Any],
    indices: Sequence[int],
    out: list[Any],
    limit: int | None,
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
                note_item(exc, task, _failed_index(futures, indices, exc), len(items))
            raise
        for i, value in zip(indices, values, strict=True):
            out[i] = value
        return
    shared = iter(indices)
    workers = [asyncio.ensure_future(_worker(task, call, items, shared, out)) for _ in range(limit)]
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
    task: str,
    call: Callable[[Any], Awaitable[Any]],
    items: Sequence[Any],
    shared: Iterator[int],
    out: list[Any],
) -> None:
    for i in shared:
        try:
            out[i] = await call(items[i])
        except Exception as exc:
            note_item(exc, task, i, len(items))
            raise


async def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)


def _keep_done(futures: Sequence[asyncio.Future[Any]], indices: Sequence[int], out: list[Any]) -> None:
    for i, future in zip(indices, futures, strict=True):
        if future.done() and not future.cancelled() and future.exception() is None:
            out[i] = future.result()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _failed_index(futures: Sequence[asyncio.Future[Any]], indices: Sequence[int], exc: BaseException) -> int:
    for i, future in zip(indices, futures, strict=True):
        if future.done() and not future.cancelled() and future.exception() is exc:
            return i
    return -1


class _ThreadMap:
    """The shared state of one sync map: an index iterator, a stop flag, the first error."""

    def __init__(
        self,
        task: str,
        call: Callable[[Any], Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        loop: asyncio.AbstractEventLoop,
    ):
        self.task = task
        self.call = call
        self.items = items
        self.out = out
        self.stop = False
        self.error: BaseException | None = None
        self._indices = iter(indices)
        self._lock = threading.Lock()
        self._loop = loop
        self._awaiting: set[concurrent.futures.Future[Any]] = set()

    def work(self) -> None:
        """One thread's loop: take the next index, run it, until done, stopped or failed."""
        call, items, out, lock, indices = self.call, self.items, self.out, self._lock, self._indices
        while not self.stop:
            with lock:
                i = next(indices, -1)
            if i < 0:
                return
            try:
                value = call(items[i])
                out[i] = self._await(value) if inspect.isawaitable(value) else value
            except BaseException as exc:
                self._fail(exc, i)
                return

    def _await(self, awaitable: Awaitable[Any]) -> Any:
        """A sync function returned a coroutine (a wrapper of an async one): run it on the loop.

        The thread waits for it, so the item keeps its slot and its place in the map's failure
        handling, exactly as an unmapped sync task's coroutine is awaited.
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
                note_item(exc, self.task, index, len(self.items))
                self.error = exc
            self._stop_locked()


async def map_threads(
    task: str,
    call: Callable[[Any], Any],
    items: Sequence[Any],
    indices: Sequence[int],
    out: list[Any],
    threads: int,
) -> None:
    """`out[i] = call(items[i])` for every index on `threads` threads (never blocks the loop).

    A coroutine returned by `call` is awaited on the loop, its thread waiting for it.
    When cancelled, threads stop after their current item; a running item cannot be
    interrupted, so it finishes in the background.
    """
    if not indices:
        return
    count = max(1, min(threads, len(indices)))
    loop = asyncio.get_running_loop()
    state = _ThreadMap(task, call, items, indices, out, loop)
    pool = concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix=f"sflow-{task}")
    try:
        threads_ = [pool.submit(contextvars.copy_context().run, state.work) for _ in range(count)]
        await asyncio.gather(*(asyncio.wrap_future(t) for t in threads_))
    finally:
        state.cancel_awaiting()
        pool.shutdown(wait=False, cancel_futures=True)
    if state.error is not None:
        raise state.error


def own_thread(fn: Callable[[], Any], name: str) -> concurrent.futures.Future[Any]:
    """`fn()` in a new thread (with this context), as a future: a timed-out call holds only its own."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            value = context.run(fn)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
