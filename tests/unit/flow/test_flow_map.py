"""Mapped tasks: over an iterable or an upstream result, order kept, concurrency bounded."""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import threading
import time
from typing import Any

import pytest

import sflow.flow
from sflow.engine import State


class Peak:
    """Counts calls running at once (thread-safe) and remembers the maximum."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def test_map_over_iterable_keeps_order_async() -> None:
    with sflow.flow("m", record=False) as f:

        @f.task(map=range(20))
        async def slow_first(x):
            await asyncio.sleep(0.002 * (20 - x))  # later items finish first
            return x * x

    assert f.result.slow_first == [x * x for x in range(20)]


def test_map_over_upstream_result_sync() -> None:
    with sflow.flow("m", inputs={"n": 30}, record=False) as f:

        @f.task
        def numbers(n):
            return list(range(n))

        @f.task(map="numbers")
        def square(x):
            time.sleep(random.random() / 1000)
            return x * x

        @f.task
        def total(square):
            return sum(square)

    assert f.result.square == [x * x for x in range(30)]
    assert f.result.total == sum(x * x for x in range(30))


def test_map_over_an_input_and_generator() -> None:
    with sflow.flow("m", inputs={"words": ["a", "bb", "ccc"]}, record=False) as f:

        @f.task(map="words")
        def length(word):
            return len(word)

        @f.task(map=(i for i in range(3)))
        def gen(i):
            return i

    assert f.result.length == [1, 2, 3]
    assert f.result.gen == [0, 1, 2]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_max_concurrent_is_respected(kind: str) -> None:
    peak = Peak()
    with sflow.flow("m", record=False) as f:
        if kind == "async":

            @f.task(map=range(40), max_concurrent=3)
            async def work(x):
                with peak:
                    await asyncio.sleep(0.01)
                return x

        else:

            @f.task(map=range(40), max_concurrent=3)
            def work(x):
                with peak:
                    time.sleep(0.01)
                return x

    assert f.result.work == list(range(40))
    assert peak.peak == 3


def test_unbounded_async_map_runs_all_at_once() -> None:
    peak = Peak()
    with sflow.flow("m", record=False) as f:

        @f.task(map=range(200))
        async def wait(x):
            with peak:
                await asyncio.sleep(0.2)
            return x

    assert peak.peak == 200  # every call was waiting at once


def test_item_goes_to_first_parameter_that_is_not_a_task_or_input() -> None:
    with sflow.flow("m", inputs={"scale": 10}, record=False) as f:

        @f.task
        def offset():
            return 1

        @f.task(map=[1, 2, 3])
        def first(x, scale, offset):  # item is the first parameter
            return x * scale + offset

        @f.task(map=[1, 2, 3])
        def middle(scale, x, offset, unused=None):  # item is not first: passed by keyword
            return x * scale + offset

        @f.task(map=[1, 2, 3])
        def keyword_only(scale, *, item, offset):
            return item * scale + offset

    assert f.result.first == f.result.middle == f.result.keyword_only == [11, 21, 31]


def test_an_ambiguous_item_parameter_is_a_definition_error_naming_the_def() -> None:
    ran = []
    with pytest.raises(sflow.flow.FlowDefinitionError) as info, sflow.flow("m", record=False) as f:

        @f.task(map=[1, 2])
        def m(scale=10, item=None):
            ran.append(item)

    message = str(info.value)
    line = inspect.getsourcelines(m)[1] + 1  # the `def`, below its decorator
    assert (
        f"task 'm' (test_flow_map.py:{line}): which parameter receives the map item is ambiguous" in message
    )
    assert "'scale', 'item'" in message and "map_param=" in message
    assert ran == []


def test_map_param_names_the_item_parameter() -> None:
    with sflow.flow("m", inputs={"offset": 1}, record=False) as f:

        @f.task(map=[1, 2], map_param="item")
        def m(scale=10, item=None, offset=0):
            return item * scale + offset

        f.task(lambda x, y=2: x * y, name="one_without_default", map=[1, 2])
        f.task(lambda x=3: x, name="only_one", map=[1, 2])

    assert f.result.m == [11, 21]
    assert f.result.one_without_default == [2, 4]
    assert f.result.only_one == [1, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"map_param": "itme"},
            r"map_param='itme' is not a parameter of the function; did you mean 'item'\?",
        ),
        ({"map_param": "offset"}, "map_param='offset' names a task or input"),
    ],
)
def test_map_param_mistakes(options: dict, message: str) -> None:
    with (
        pytest.raises(sflow.flow.FlowDefinitionError, match=message),
        sflow.flow("m", inputs={"offset": 1}) as f,
    ):
        f.task(lambda item, offset: item, name="t", map=[1], **options)


def test_map_param_without_map() -> None:
    f = sflow.flow("m", record=False)
    with pytest.raises(sflow.flow.FlowDefinitionError, match="map_param only applies to a mapped task"):
        f.task(lambda item: item, name="t", map_param="item")


def test_mapped_task_needs_an_item_parameter() -> None:
    with (
        pytest.raises(sflow.flow.FlowDefinitionError, match="parameter for the item"),
        sflow.flow("m", inputs={"a": 1}, record=False) as f,
    ):
        f.task(lambda a: a, name="t", map=[1])


def test_unknown_map_source() -> None:
    with (
        pytest.raises(sflow.flow.FlowDefinitionError, match="map='nums'"),
        sflow.flow("m", record=False) as f,
    ):
        f.task(lambda x: x, name="t", map="nums")


def test_map_over_non_iterable_result_fails_the_task() -> None:
    with pytest.raises(TypeError, match="must be an iterable"), sflow.flow("m", record=False) as f:
        f.task(lambda: 5, name="five")
        f.task(lambda x: x, name="t", map="five")


def test_empty_map() -> None:
    with sflow.flow("m", record=False) as f:
        f.task(lambda x: x, name="t", map=[])
    assert f.result.t == []


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_failed_item_raises_original_exception_with_item_note(kind: str) -> None:
    def check(x: int) -> int:
        if x == 7:
            raise KeyError(f"item {x}")
        return x

    async def acheck(x: int) -> int:
        return check(x)

    with pytest.raises(KeyError) as info, sflow.flow("m", record=False) as f:
        f.task(acheck if kind == "async" else check, name="t", map=range(10))
    assert any("item 7 of 10 of mapped task 't'" in n for n in info.value.__notes__)
    assert f.states["t"] is State.FAILED


@pytest.mark.parametrize(("kind", "limit"), [("async", None), ("async", 2), ("sync", None)])
def test_retry_of_a_map_reruns_only_failed_items(kind: str, limit: int | None) -> None:
    calls: list[int] = []
    lock = threading.Lock()
    failed_once: set[int] = set()

    def flaky(x: int) -> int:
        with lock:
            calls.append(x)
            first_time = x % 4 == 0 and x not in failed_once
            failed_once.add(x)
        if first_time:
            raise RuntimeError(f"flaky {x}")
        return x

    async def aflaky(x: int) -> int:
        return flaky(x)

    with sflow.flow("m", record=False) as f:
        f.task(aflaky if kind == "async" else flaky, name="t", map=range(12), retries=5, max_concurrent=limit)
    assert f.result.t == list(range(12))
    assert len(calls) < 12 * 2  # not every item again on every attempt
    assert sorted(set(calls)) == list(range(12))


def _via_coroutine(x: int) -> Any:
    """A sync function returning a coroutine, as a decorator around an async function does."""

    async def later() -> int:
        await asyncio.sleep(0)
        if x == 3:
            raise LookupError(f"item {x}")
        return 2 * x

    return later()


def test_a_sync_item_returning_a_coroutine_is_awaited_as_an_unmapped_task_is() -> None:
    with sflow.flow("m", record=False) as f:
        f.task(_via_coroutine, name="single", map=[1, 2], max_concurrent=1)
        f.task(_via_coroutine, name="many", map=[0, 1, 2])
        f.task(functools.partial(_via_coroutine, 5), name="unmapped")
    assert f.result.single == [2, 4]
    assert f.result.many == [0, 2, 4]
    assert f.result.unmapped == 10


def test_a_failing_coroutine_of_a_sync_item_fails_the_map_naming_the_item() -> None:
    with pytest.raises(LookupError) as info, sflow.flow("m", record=False) as f:
        f.task(_via_coroutine, name="t", map=[1, 3, 2])
    assert any("item 1 of 3 of mapped task 't'" in n for n in info.value.__notes__)
