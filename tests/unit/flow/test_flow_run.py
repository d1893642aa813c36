"""Running a flow: concurrency, no level barrier, sync and async together, inside a running loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import sflow.flow
from sflow.engine import State


def test_two_independent_tasks_run_concurrently_sync() -> None:
    spans: dict[str, tuple[float, float]] = {}
    started = time.perf_counter()
    with sflow.flow("par", record=False) as f:

        @f.task
        def a():
            t = time.perf_counter()
            time.sleep(0.2)
            spans["a"] = (t, time.perf_counter())
            return "a"

        @f.task
        def b():
            t = time.perf_counter()
            time.sleep(0.2)
            spans["b"] = (t, time.perf_counter())
            return "b"

    elapsed = time.perf_counter() - started
    assert (f.result.a, f.result.b) == ("a", "b")
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1]  # they overlapped
    assert elapsed < 0.38, elapsed  # ~0.2 s, not 0.4


def test_two_independent_tasks_run_concurrently_async() -> None:
    started = time.perf_counter()
    with sflow.flow("par", record=False) as f:

        @f.task
        async def a():
            await asyncio.sleep(0.2)

        @f.task
        async def b():
            await asyncio.sleep(0.2)

    assert time.perf_counter() - started < 0.38


def test_dependent_starts_when_its_inputs_are_ready_not_at_a_level_barrier() -> None:
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    with sflow.flow("nobarrier", record=False) as f:

        @f.task
        async def fast():
            await asyncio.sleep(0.05)
            return 1

        @f.task
        async def slow():  # unrelated, same "level" as fast
            await asyncio.sleep(0.6)
            marks["slow_end"] = time.perf_counter() - t0

        @f.task
        async def after_fast(fast):
            marks["after_fast_start"] = time.perf_counter() - t0
            return fast + 1

    assert f.result.after_fast == 2
    assert marks["after_fast_start"] < 0.3 < marks["slow_end"], marks


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


def test_long_chain_is_not_paced_by_polling() -> None:
    started = time.perf_counter()
    f = sflow.flow("chain", record=False)
    f.task(lambda: 0, name="t0")
    for i in range(1, 200):
        namespace: dict = {}
        exec(f"def t{i}(t{i - 1}): return t{i - 1} + 1", namespace)
        f.task(namespace[f"t{i}"])
    f.run()
    assert f.result.t199 == 199
    assert time.perf_counter() - started < 2.0


def test_flow_timeout() -> None:
    with pytest.raises(sflow.flow.FlowTimeout), sflow.flow("slowflow", timeout=0.2, record=False) as f:

        @f.task
        async def forever():
            await asyncio.sleep(30)

    assert f.states["forever"] is State.CANCELLED
