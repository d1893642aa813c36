"""The executor interface: run one Python callable somewhere and get its result back.

Every executor (in-process threads, a process pool, a local worker subprocess, Slurm jobs)
implements the same small contract, so the layer above (`@task`, flows) never needs to
know where a call runs:

    async with get_executor("slurm", {"partition": "debug"}) as ex:
        handle = await ex.submit(Call(fn, args=(1, 2)))
        value = await handle.result()          # or: value = await handle

`submit` returns as soon as the call is *handed over* (a thread started, a job queued); the
`Handle` resolves later with the value or with the remote exception, re-raised with its
original type and the remote traceback attached (`errors.attach_remote_traceback`).
Failures of the machinery itself (sbatch refused, job killed, timeout) are `DispatchError`s.

Implementing an executor means writing `_launch` and `_terminate` (plus optional `_start`
and `_close`); the public methods here keep the lifetime rules in one place: a handle
resolves exactly once, `cancel` of a finished handle is a no-op, and `aclose` cancels
everything still running, so nothing outlives the executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar

from sflow.dispatch.errors import (
    DispatchCancelled,
    DispatchConfigError,
    DispatchError,
    DispatchTimeout,
)
from sflow.errors import suggest

log = logging.getLogger(__name__)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def new_id() -> str:
    """A short random id (call ids, event ids): 16 hex characters, safe in file names."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Call:
    """What to run: `fn(*args, **kwargs)`, plus how (resources, timeout) and a display name.

    `resources` are executor specific (Slurm: `partition`, `time`, `mem`, `gpus`, ...); an
    executor rejects keys it does not know. `timeout` (seconds) bounds the *run*: it counts
    from the moment the call is known to have started (the worker reported `task_started`,
    the Slurm job was seen running, a thread or process picked it up), so time spent waiting
    in a Slurm queue or for a `max_concurrent` slot does not count. When it expires the work
    is cancelled and the handle raises `DispatchTimeout`. (Remote executors can bound the
    wait before the start separately: their `queue_timeout` option.)

    `key` makes calls that are attempts of one piece of work never run at once. A sync call
    the `local` executor runs cannot be interrupted: cancelled or timed out, it goes on in
    its thread, and the next call with the same key waits until it has returned (that wait
    counts against the new call's timeout). `call_with_retries` gives its attempts one key.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    key: Hashable | None = None

    @property
    def display_name(self) -> str:
        """`name`, else the callable's qualified name."""
        if self.name:
            return self.name
        return str(getattr(self.fn, "__qualname__", None) or getattr(self.fn, "__name__", "call"))


class Handle:
    """One submitted call: await `result()` (or the handle itself) for its outcome.

    Executors fill in the descriptive attributes as they learn them: `job_id` (e.g. the
    Slurm job or array element id), `log_path`, `host`, `state` (`pending`, `running`,
    `done`, `failed`, `cancelled`), `started_at` and `last_heartbeat` (epoch seconds).
    They call `mark_started()` once the call is known to run; that starts its `timeout`.
    """

    def __init__(self, call: Call, executor: Executor, call_id: str | None = None) -> None:
        self.call = call
        self.call_id = call_id or new_id()
        self.executor = executor
        self.job_id: str | None = None
        self.log_path: str | None = None
        self.host: str | None = None
        self.state = "pending"
        self.started_at: float | None = None
        self.last_heartbeat: float | None = None
        self._future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved"

    def __repr__(self) -> str:
        job = f" job={self.job_id}" if self.job_id else ""
        return f"<Handle {self.call.display_name} id={self.call_id}{job} {self.state}>"

    @property
    def name(self) -> str:
        return self.call.display_name

    def done(self) -> bool:
        return self._future.done()

    async def result(self, timeout: float | None = None) -> Any:
        """The call's value; raises the remote exception or a `DispatchError`.

        `timeout` bounds only this wait (raising `TimeoutError`); the call keeps running.
        """
        if timeout is None:
            return await asyncio.shield(self._future)
        return await asyncio.wait_for(asyncio.shield(self._future), timeout)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    def exception(self) -> BaseException | None:
        """The exception of a finished call (None on success); `InvalidStateError` if not done."""
        return self._future.exception()

    def add_done_callback(self, fn: Callable[[Handle], None]) -> None:
        """Call `fn(handle)` once the handle resolves (at once if it already has)."""
        self._future.add_done_callback(lambda _f: fn(self))

    async def cancel(self) -> None:
        """Cancel this call (see `Executor.cancel`)."""
        await self.executor.cancel(self)

    # -- for executors -------------------------------------------------------------------
    def mark_started(self, at: float | None = None) -> None:
        """The call is running (idempotent): state `running`, `started_at`, and its timeout starts."""
        if self._future.done():
            return
        if self.state == "pending":
            self.state = "running"
        if self.started_at is None:
            self.started_at = time.time() if at is None else at
        self.executor._call_started(self)

    def set_result(self, value: Any) -> bool:
        """Resolve with a value; False (and no change) if the handle was already resolved."""
        if self._future.done():
            return False
        self.state = "done"
        self._future.set_result(value)
        return True

    def set_exception(self, exc: BaseException, state: str = "failed") -> bool:
        """Resolve with an exception; False (and no change) if already resolved."""
        if self._future.done():
            return False
        self.state = state
        self._future.set_exception(exc)
        return True


class Executor(ABC):
    """Runs `Call`s somewhere. Use as `async with executor:` or call `start()`/`aclose()`.

    Subclasses implement `_launch(handles)` (hand the calls over; set `handle.job_id` etc.
    and resolve each handle later) and `_terminate(handles)` (stop the work of handles that
    are being cancelled; they are already resolved when it is called). `resource_keys`
    lists the `Call.resources` keys the executor understands (None: accept any).

    An executor that calls `handle.mark_started()` when a call starts sets `reports_start`;
    a call's `timeout` then counts from its start. For one that does not (the default, so
    an executor written before this existed keeps its timeouts), it counts from submission.
    `queue_timeout` (seconds, optional) bounds the wait between submission and start of an
    executor that reports starts: a call not started by then fails with `DispatchTimeout`.
    """

    name: ClassVar[str] = "executor"
    resource_keys: ClassVar[frozenset[str] | None] = frozenset()
    reports_start: ClassVar[bool] = False

    def __init__(self, *, default_timeout: float | None = None, queue_timeout: float | None = None) -> None:
        self.default_timeout = default_timeout
        self.queue_timeout = queue_timeout
        self._live: dict[str, Handle] = {}
        self._started = False
        self._closed = False
        self._timers: dict[str, asyncio.TimerHandle] = {}  # call id -> its run timeout
        self._queue_timers: dict[str, asyncio.TimerHandle] = {}  # call id -> its queue-wait bound
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Executor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- public contract ----------------------------------------------------------------
    async def start(self) -> None:
        """Acquire what the executor needs (pools, callback server). Idempotent."""
        if self._closed:
            raise DispatchError(f"{self.name} executor is closed")
        if not self._started:
            await self._start()
            self._started = True

    async def submit(self, call: Call) -> Handle:
        """Hand one call over; returns once it is submitted (not when it finishes)."""
        return (await self.submit_many([call]))[0]

    async def submit_many(self, calls: Iterable[Call]) -> list[Handle]:
        """Hand several calls over at once (Slurm: as job arrays). Handles keep the input order.

        A submission failure (e.g. sbatch refusing the job) resolves the affected handles
        with that error instead of raising here, so one bad call does not hide the others.
        """
        if not self._started:
            await self.start()
        if self._closed:
            raise DispatchError(f"{self.name} executor is closed")
        handles = [Handle(self._prepare(call), self) for call in calls]
        for handle in handles:
            self._track(handle)
        if handles:
            await self._launch_guarded(handles)
        return handles

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Convenience: submit `fn(*args, **kwargs)` and wait for its value."""
        return await (await self.submit(Call(fn, args, kwargs)))

    async def map(self, fn: Callable[..., Any], items: Iterable[Any], **call_options: Any) -> list[Any]:
        """Convenience: `[fn(x) for x in items]` submitted at once (one job array on Slurm)."""
        calls = [Call(fn, (item,), **call_options) for item in items]
        handles = await self.submit_many(calls)
        return list(await asyncio.gather(*(h.result() for h in handles)))

    async def cancel(self, handle: Handle) -> None:
        """Cancel one call: its handle raises `DispatchCancelled`; its work is stopped."""
        await self.cancel_many([handle])

    async def cancel_many(self, handles: Sequence[Handle]) -> None:
        """Cancel several calls at once (Slurm: one scancel for all of them)."""
        await self._stop(handles, lambda h: DispatchCancelled(f"{h.name} ({h.call_id}) was cancelled"))

    async def aclose(self) -> None:
        """Cancel everything still running and release resources. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.cancel_many(list(self._live.values()))
            if self._started:
                await self._close()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- to implement -------------------------------------------------------------------
    async def _start(self) -> None:  # noqa: B027 - optional hook
        """Optional: acquire resources."""

    @abstractmethod
    async def _launch(self, handles: list[Handle]) -> None:
        """Hand these (already tracked) calls over; resolve each handle when it finishes."""

    @abstractmethod
    async def _terminate(self, handles: list[Handle]) -> None:
        """Stop the work of these handles (already resolved as cancelled or timed out)."""

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Optional: release resources after every live call was cancelled.

        Background tasks started with `spawn` are still running here (so it may wait for
        them, with a bound); they are cancelled right after it returns.
        """

    # -- helpers for subclasses ---------------------------------------------------------
    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a background coroutine owned by the executor (cancelled by `aclose`)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def live_handles(self) -> list[Handle]:
        """Handles submitted here that have not resolved yet."""
        return [h for h in self._live.values() if not h.done()]  # untracking runs a loop turn later

    # -- internals ----------------------------------------------------------------------
    def _prepare(self, call: Call) -> Call:
        if self.resource_keys is not None:
            unknown = sorted(set(call.resources) - self.resource_keys)
            if unknown:
                known = ", ".join(sorted(self.resource_keys)) or "none"
                raise DispatchConfigError(
                    f"{self.name} executor: unknown resource key {unknown[0]!r} for {call.display_name}"
                    f"{suggest(unknown[0], self.resource_keys)} (known: {known})"
                )
        if call.timeout is None and self.default_timeout is not None:
            call = replace(call, timeout=self.default_timeout)
        return call

    def _track(self, handle: Handle) -> None:
        self._live[handle.call_id] = handle
        handle.add_done_callback(self._untrack)
        if not self.reports_start:
            self._arm_timeout(handle)
        elif self.queue_timeout is not None:
            loop = asyncio.get_running_loop()
            self._queue_timers[handle.call_id] = loop.call_later(
                self.queue_timeout, self._expire_queued, handle
            )

    def _call_started(self, handle: Handle) -> None:
        """`Handle.mark_started`: the wait in the queue is over; the run's timeout starts now."""
        queued = self._queue_timers.pop(handle.call_id, None)
        if queued is not None:
            queued.cancel()
        if handle.call_id in self._live:
            self._arm_timeout(handle)

    def _arm_timeout(self, handle: Handle) -> None:
        if handle.call.timeout is not None and handle.call_id not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[handle.call_id] = loop.call_later(handle.call.timeout, self._expire, handle)

    def _untrack(self, handle: Handle) -> None:
        self._live.pop(handle.call_id, None)
        for timers in (self._timers, self._queue_timers):
            timer = timers.pop(handle.call_id, None)
            if timer is not None:
                timer.cancel()

    def _expire(self, handle: Handle) -> None:
        since = "of starting" if self.reports_start else "of submission"
        self.spawn(
            self._stop(
                [handle],
                lambda h: DispatchTimeout(
                    f"{h.name} ({h.call_id}) did not finish within {h.call.timeout:g} s {since}"
                ),
                state="failed",
            )
        )

    def _expire_queued(self, handle: Handle) -> None:
        self._queue_timers.pop(handle.call_id, None)
        job = f", job {handle.job_id}" if handle.job_id else ""
        self.spawn(
            self._stop(
                [handle],
                lambda h: DispatchTimeout(
                    f"{h.name} ({h.call_id}{job}) did not start within {self.queue_timeout:g} s "
                    "(queue_timeout)"
                ),
                state="failed",
            )
        )

    async def _stop(
        self, handles: Sequence[Handle], error: Callable[[Handle], BaseException], state: str = "cancelled"
    ) -> None:
        stopping = [h for h in handles if h.set_exception(error(h), state=state)]
        if stopping:
            await self._terminate(stopping)

    async def _launch_guarded(self, handles: list[Handle]) -> None:
        try:
            await self._launch(handles)
        except Exception as exc:
            log.warning("%s executor: submitting %d call(s) failed: %s", self.name, len(handles), exc)
            for handle in handles:
                handle.set_exception(exc)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s executor: background task failed", self.name, exc_info=task.exception())


ExecutorFactory = Callable[[Mapping[str, Any]], Executor]
ConfigValidator = Callable[[Mapping[str, Any]], object]

_BUILTIN: dict[str, str] = {
    "local": "sflow.dispatch.local:LocalExecutor",
    "process": "sflow.dispatch.process:ProcessExecutor",
    "subprocess": "sflow.dispatch.subprocess:SubprocessExecutor",
    "slurm": "sflow.dispatch.slurm.executor:SlurmExecutor",
}
_REGISTRY: dict[str, tuple[ExecutorFactory, ConfigValidator | None]] = {}


def register_executor(
    name: str, factory: ExecutorFactory, *, validate: ConfigValidator | None = None
) -> None:
    """Make `factory(config) -> Executor` available as executor `name` (replaces a previous one).

    An executor may also be named by import path, `"package.module:Factory"`, without registering.

    `validate(config)`, if given, is called by `sflow.dispatch.config.config()` so a bad
    `executor_config` is reported when the configuration is set, not at first use.
    """
    _REGISTRY[name] = (factory, validate)


def _lookup(name: str) -> tuple[ExecutorFactory, ConfigValidator | None]:
    if name not in _REGISTRY and (name in _BUILTIN or ":" in name):
        from sflow.dispatch.options import resolve_callable

        cls = resolve_callable(_BUILTIN.get(name, name), f"executor {name!r}")
        _REGISTRY[name] = (cls, getattr(cls, "validate_config", None))
    if name not in _REGISTRY:
        known = ", ".join(sorted({*_REGISTRY, *_BUILTIN}))
        raise DispatchConfigError(f"unknown executor {name!r} (known: {known})")
    return _REGISTRY[name]


def executor_class(name: str) -> type[Executor] | None:
    """The `Executor` class behind executor `name` (None for a factory that is not one)."""
    factory, _validate = _lookup(name)
    return factory if isinstance(factory, type) and issubclass(factory, Executor) else None


def executor_names() -> list[str]:
    """Names of the registered and built-in executors."""
    return sorted({*_REGISTRY, *_BUILTIN})


def validate_executor_config(name: str, config: Mapping[str, Any] | None = None) -> None:
    """Raise `DispatchConfigError` if `config` is not valid for executor `name`."""
    _factory, validate = _lookup(name)
    if validate is not None:
        validate(dict(config or _EMPTY))


def get_executor(name: str, config: Mapping[str, Any] | None = None) -> Executor:
    """A new, not yet started executor `name` built from `config` (its `executor_config`)."""
    factory, _validate = _lookup(name)
    return factory(dict(config or _EMPTY))
