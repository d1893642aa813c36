"""Calls in this process: the `local` executor keeps a flow's guarantees for sync calls.

A sync call cannot be interrupted, so a call that timed out runs on in its thread: the next
call of the same key must wait for it. Each call runs in a copy of its caller's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest

from sflow.dispatch import Call, DispatchTimeout, RetryPolicy, call_with_retries, get_executor
from sflow.dispatch.in_process import InProcess


class Gated:
    """A sync function whose calls each wait for one opening of the gate, counting calls at once."""

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.entered = self.running = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, value: int = 0) -> int:
        with self._lock:
            self.entered += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.gate.acquire(timeout=60)
        with self._lock:
            self.running -= 1
        return value

    def open_all(self) -> None:
        self.gate.release(1000)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop turn (threads start, waits end) until `condition()` holds."""
    while not condition():
        await asyncio.sleep(0.01)


def test_a_timed_out_sync_call_and_the_next_of_its_key_never_run_together(run_async) -> None:
    gated = Gated()

    async def scenario() -> None:
        async with get_executor("local") as ex:
            first = await ex.submit(Call(gated, (1,), key="load", timeout=0.1))
            with pytest.raises(DispatchTimeout):
                await first  # it runs on in its thread, held by the gate
            second = await ex.submit(Call(gated, (2,), key="load", timeout=0.1))
            with pytest.raises(DispatchTimeout):
                await second  # it waited for the first call all along, and never started
            assert gated.entered == 1
            other = await ex.submit(Call(gated, (3,), key="other"))  # another key does not wait
            await until(lambda: gated.entered == 2)
            gated.open_all()
            assert await other == 3
            third = await ex.submit(Call(gated, (4,), key="load"))
            assert await third == 4  # once the first call has returned, its key is free

    try:
        run_async(scenario)
    finally:
        gated.open_all()
    assert gated.entered == 3


def test_retried_calls_on_the_local_executor_never_overlap(run_async) -> None:
    """`call_with_retries` gives its attempts one key: a retry waits for the attempt that timed out."""
    gated = Gated()

    async def scenario() -> None:
        async with get_executor("local") as ex:
            with pytest.raises(DispatchTimeout):
                await call_with_retries(ex, Call(gated, (1,), timeout=0.1), RetryPolicy(count=2))

    try:
        run_async(scenario)
    finally:
        gated.open_all()
    assert gated.entered == 1 and gated.peak == 1


def test_calls_of_one_key_submitted_together_run_one_after_another(run_async) -> None:
    gated = Gated()
    core = InProcess()
    infos: list[dict[str, object]] = [{}, {}, {}]

    def waiting() -> int:
        return sum("waiting" in info for info in infos)

    async def scenario() -> None:
        calls = [asyncio.ensure_future(core.call(gated, (i,), key="k", info=infos[i])) for i in range(3)]
        await until(lambda: gated.entered == 1 and waiting() == 2)
        for entered in (2, 3):
            gated.gate.release()  # the running call returns; exactly one waiting call starts
            await until(lambda entered=entered: gated.entered == entered and waiting() == 3 - entered)
        gated.gate.release()
        assert await asyncio.gather(*calls) == [0, 1, 2]

    try:
        run_async(scenario)
    finally:
        gated.open_all()
        core.close()
    assert gated.peak == 1


REQUEST = contextvars.ContextVar("REQUEST", default="unset")


def read_then_set() -> str:
    seen = REQUEST.get()
    REQUEST.set("set by the call")  # stays in this call
    return seen


def test_local_sync_calls_see_the_submitters_context_variables(run_async) -> None:
    async def scenario() -> None:
        REQUEST.set("set by the caller")
        async with get_executor("local", {"max_workers": 1}) as ex:  # one thread: both calls share it
            assert await ex.run(read_then_set) == "set by the caller"
            assert await ex.run(read_then_set) == "set by the caller"
        assert REQUEST.get() == "set by the caller"

    run_async(scenario)
