"""Running a flow: concurrency, no level barrier, sync and async together, inside a running loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import sflow.flow
from sflow.engine import State


def test_two_independent_tasks_run_concurrently_sync() -> None:
    both_running = threading.Barrier(2, timeout=30)  # one after the other, the first would give up
    with sflow.flow("par", record=False) as f:

        @f.task
        def a():
            both_running.wait()
            return "a"

        @f.task
        def b():
            both_running.wait()
            return "b"

    assert (f.result.a, f.result.b) == ("a", "b")


def test_two_independent_tasks_run_concurrently_async() -> None:
    arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def meet(me: str, other: str) -> str:
        arrived[me].set()
        await asyncio.wait_for(arrived[other].wait(), 30)  # one after the other: a TimeoutError
        return me

    with sflow.flow("par", record=False) as f:

        @f.task
        async def a():
            return await meet("a", "b")

        @f.task
        async def b():
            return await meet("b", "a")

    assert (f.result.a, f.result.b) == ("a", "b")


def test_dependent_starts_when_its_inputs_are_ready_not_at_a_level_barrier() -> None:
    after_fast_started = asyncio.Event()
    with sflow.flow("nobarrier", record=False) as f:

        @f.task
        async def fast():
            return 1

        @f.task
        async def slow():  # unrelated, same "level" as fast: ends only once after_fast has started
            await asyncio.wait_for(after_fast_started.wait(), 30)
            return "slow"

        @f.task
        async def after_fast(fast):
            after_fast_started.set()
            return fast + 1

    assert (f.result.after_fast, f.result.slow) == (2, "slow")


def test_sync_runs_in_threads_async_on_the_loop() -> None:
    seen: dict[str, object] = {}
    with sflow.flow("mix", inputs={"base": 10}, record=False) as f:

        @f.task
        def sync_part(base):
            seen["sync_thread"] = threading.current_thread().name
            return base + 1

        @f.task
        async def async_part(sync_part):
            seen["loop"] = asyncio.get_running_loop()
            seen["async_thread"] = threading.current_thread().name
            return sync_part * 2

        @f.task
        def last(async_part, sync_part):
            return async_part + sync_part

    assert f.result.last == 33
    assert seen["sync_thread"] != threading.main_thread().name
    assert seen["async_thread"] == threading.main_thread().name


def test_async_with_inside_a_running_loop() -> None:
    async def main() -> object:
        async with sflow.flow("inloop", inputs={"x": 2}, record=False) as f:

            @f.task
            async def double(x):
                await asyncio.sleep(0.01)
                return 2 * x

            @f.task
            def plus(double):
                return double + 1

        return f.result.plus

    assert asyncio.run(main()) == 5


def test_plain_with_inside_a_running_loop_is_a_clear_error() -> None:
    async def main() -> None:
        with sflow.flow("wrong", record=False) as f:
            f.task(lambda: 1, name="a")

    with pytest.raises(sflow.flow.FlowError, match="async with"):
        asyncio.run(main())


def test_explicit_run_without_with() -> None:
    f = sflow.flow("explicit", record=False)
    f.task(lambda: 41, name="a")
    f.task(lambda a: a + 1, name="b")
    assert f.run().b == 42
    assert f.states == {"a": State.SUCCEEDED, "b": State.SUCCEEDED}
    with pytest.raises(sflow.flow.FlowError, match="only once"):
        f.run()


def test_empty_flow() -> None:
    with sflow.flow("empty", record=False) as f:
        pass
    assert dict(f.result) == {}


def test_long_chain_runs_to_its_end() -> None:
    """How fast a chain runs (no polling between links) is measured by bench/bench_flow.py."""
    f = sflow.flow("chain", record=False)
    f.task(lambda: 0, name="t0")
    for i in range(1, 200):
        namespace: dict = {}
        exec(f"def t{i}(t{i - 1}): return t{i - 1} + 1", namespace)
        f.task(namespace[f"t{i}"])
    f.run()
    assert f.result.t199 == 199


def test_flow_timeout() -> None:
    with pytest.raises(sflow.flow.FlowTimeout), sflow.flow("slowflow", timeout=0.2, record=False) as f:

        @f.task
        async def forever():
            await asyncio.sleep(30)

    assert f.states["forever"] is State.CANCELLED


REQUEST = contextvars.ContextVar("REQUEST", default="unset")


def test_every_in_process_call_sees_the_callers_context_variables_and_keeps_its_own() -> None:
    """Sync tasks and map items run in threads, each in a copy of the context that started the flow."""

    def read_then_set(item: int = 0) -> str:
        seen = REQUEST.get()
        REQUEST.set("set by a task")  # stays in this call
        return seen

    async def read_async() -> str:
        return REQUEST.get()

    REQUEST.set("set by the caller")
    with sflow.flow("ctx", record=False) as f:
        f.task(read_then_set, name="single")
        f.task(read_async, name="single_async")
        f.task(read_then_set, name="after", map=[1, 2])  # the plain path: threads pulling items
        f.task(read_then_set, name="retried", map=[1, 2], retries=1)  # each attempt on its own
        f.task(read_then_set, name="timed", map=[1, 2], timeout=30)  # each attempt in a thread of its own

    assert f.result.single == f.result.single_async == "set by the caller"
    for name in ("after", "retried", "timed"):
        assert f.result[name] == ["set by the caller"] * 2, name
    assert REQUEST.get() == "set by the caller"
