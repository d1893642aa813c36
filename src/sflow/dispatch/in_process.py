"""Running a Python callable in this process: the one place that does it.

The `local` executor's calls and a flow's in-process tasks and map items all run here.
Async callables run on the running event loop, in the caller's task, so cancelling the
caller cancels them. Sync callables run in threads, so they never block the loop, each in
a copy of the caller's `contextvars` context (as `asyncio.to_thread` does): the function
sees the context variables its caller set, and what it sets stays in its call. A sync
callable that returns an awaitable (a wrapper of an async one) has it awaited on the loop.

A thread cannot be interrupted. Cancelling a sync call stops the wait for it (a call no
thread has picked up yet never runs), but one already running goes on until its function
returns. Sync calls given the same `key` therefore never run at once: a call whose key's
earlier call still runs in its thread waits until that one has returned, so a retry after
a timeout never runs beside the attempt it replaces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import os
import threading
import types
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

from sflow.dispatch import in_process_map

WAITING = "for an earlier attempt's call, still running in its thread"
_PLAIN = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, type)


def default_threads() -> int:
    """Threads for a map's sync items when nothing says otherwise (Python's thread-pool default)."""
    return min(32, (os.cpu_count() or 1) + 4)


def is_coroutine_function(fn: Callable[..., Any]) -> bool:
    """`async def` functions, also behind `functools.partial` or an async `__call__`."""
    inner = getattr(fn, "func", fn)  # functools.partial
    if inspect.iscoroutinefunction(inner):
        return True
    if isinstance(inner, _PLAIN):  # no `__call__` of their own to look at (the common case, fast)
        return False
    return inspect.iscoroutinefunction(type(inner).__call__)


class OwnThreads(concurrent.futures.Executor):
    """Each call in a new daemon thread: one that never returns holds up no other call, nor the exit."""

    def __init__(self, name: str) -> None:
        self.name = name

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(value)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return future


class InProcess:
    """Calls in this process: a shared thread pool for sync ones, and the per-key guard.

    `max_workers` sizes the shared pool (default: at least 32 threads, so blocking calls of
    independent tasks do not queue behind each other) and, when given, a map's threads.
    """

    def __init__(self, max_workers: int | None = None, name: str = "sflow-local") -> None:
        self.max_workers = max_workers
        self.name = name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: dict[Hashable, concurrent.futures.Future[Any]] = {}  # key -> its call's thread
        self._lock = threading.Lock()  # `_running` loses a key in the thread that ends its call

    def call(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        is_async: bool | None = None,
        key: Hashable | None = None,
        info: dict[str, Any] | None = None,
        threads: concurrent.futures.Executor | None = None,
    ) -> Awaitable[Any]:
        """`fn(*args, **kwargs)` in this process, to await; see the module docstring for where and how.

        `is_async` says whether `fn` is a coroutine function when it cannot be told (a lambda
        around one). An async call is `fn`'s own coroutine (nothing wraps it: a map item's
        attempt costs no more than the call). A sync call runs on `threads` (default: the
        shared pool); with a `key` it first waits for that key's earlier call, with
        `info["waiting"]` set meanwhile.
        """
        if is_coroutine_function(fn) if is_async is None else is_async:
            return fn(*args, **(kwargs or {}))
        return self._in_thread(fn, args, kwargs or {}, key, info, threads)

    async def _in_thread(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        key: Hashable | None,
        info: dict[str, Any] | None,
        threads: concurrent.futures.Executor | None,
    ) -> Any:
        if key is not None:
            await self._after_earlier(key, info)
        pool = threads or self._shared_pool()
        running = pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)
        if key is not None:
            self._hold(key, running)
        value = await asyncio.wrap_future(running)  # cancelling stops this wait, not a running thread
        return await value if inspect.isawaitable(value) else value

    async def map(
        self,
        call: Callable[[Any], Any],
        items: Sequence[Any],
        indices: Sequence[int],
        out: list[Any],
        *,
        is_async: bool,
        limit: int | None,
        name: str,
        failed: in_process_map.Failed,
    ) -> None:
        """`out[i] = call(items[i])` for every index, fast: no key, no retry, no timeout per item.

        At most `limit` at once (async items: unbounded without one; sync items:
        `thread_count(limit)` threads named `name`). `failed(exc, i)` hears of an item that
        raised; the first one stops the map and is raised.
        """
        if is_async:
            await in_process_map.map_async(call, items, indices, out, limit, failed)
        else:
            await in_process_map.map_threads(
                call, items, indices, out, self.thread_count(limit), name, failed
            )

    def thread_count(self, limit: int | None) -> int:
        """Threads for a map's sync items: `limit`, else `max_workers`, else Python's default."""
        return limit or self.max_workers or default_threads()

    @contextlib.contextmanager
    def threads(self, count: int, name: str) -> Iterator[concurrent.futures.Executor]:
        """A pool of `count` threads of its own (a map's items), shut down when the block ends."""
        pool = concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix=name)
        try:
            yield pool
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Drop the queued sync calls; running ones end in their threads, never waited for."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _shared_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            size = self.max_workers or max(32, default_threads())
            self._pool = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix=self.name)
        return self._pool

    async def _after_earlier(self, key: Hashable, info: dict[str, Any] | None) -> None:
        """Return once no earlier call of `key` runs (checked again after each wait: others wait too)."""
        waited = False
        while (earlier := self._running.get(key)) is not None and not earlier.done():
            if info is not None:
                info["waiting"] = WAITING
            waited = True
            await asyncio.wait({_watched(earlier)})
        if waited and info is not None:
            del info["waiting"]

    def _hold(self, key: Hashable, running: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._running[key] = running
        running.add_done_callback(functools.partial(self._release, key))

    def _release(self, key: Hashable, ended: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            if self._running.get(key) is ended:
                del self._running[key]


def _watched(thread: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
    """An asyncio future following `thread`; its outcome (an earlier call's) is not reported again."""
    future = asyncio.wrap_future(thread)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future
