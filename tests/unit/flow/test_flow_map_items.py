"""A map's `retries` and `timeout` are each item's own; `map_timeout` bounds the whole map."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import flow_helpers as h
import pytest

import sflow.flow
from sflow.dispatch.config import config as configure_dispatch
from sflow.engine import State
from sflow.flow import TaskTimeout
from sflow.flow.errors import FlowDefinitionError


async def afails_once(x: int, marks: str) -> int:
    return h.fails_once(x, marks)


@pytest.mark.parametrize("kind", ["sync", "async", "process"])
def test_twenty_items_each_failing_once_succeed_with_one_retry(kind: str, tmp_path: Path) -> None:
    configure_dispatch(environments={"pool": {"executor": "process", "executor_config": {"max_workers": 2}}})
    fn = afails_once if kind == "async" else h.fails_once
    env = "pool" if kind == "process" else None
    with sflow.flow("m", inputs={"marks": str(tmp_path)}, output_dir=tmp_path / "out") as f:
        f.task(fn, name="t", map=range(20), retries=1, environment=env)
    assert f.result.t == list(range(20))
    assert f.run_result is not None and f.run_result.units["t"].attempts == 1
    assert f.run_dir is not None
    events = [json.loads(line) for line in (f.run_dir / "events.jsonl").read_text().splitlines()]
    items = [(e["item"], e["attempt"], e["state"]) for e in events if "item" in e]
    assert sorted(items) == sorted(
        [(i, 1, "retrying") for i in range(20)] + [(i, 2, "succeeded") for i in range(20)]
    )
    assert "t: item 7 attempt 2 succeeded" in (f.run_dir / "sflow.log").read_text()
    summary = json.loads((f.run_dir / "summary.json").read_text())["tasks"]["t"]
    assert summary["state"] == "succeeded" and summary["item_failures"] == 20


@pytest.mark.parametrize("kind", ["sync", "async", "process"])
def test_an_item_that_always_fails_names_its_index_attempts_and_error(kind: str, tmp_path: Path) -> None:
    configure_dispatch(environments={"pool": {"executor": "process", "executor_config": {"max_workers": 2}}})
    env = "pool" if kind == "process" else None

    def check(x: int) -> int:
        if x == 7:
            raise h.PipelineError(f"bad item {x}", 7)
        return x

    async def acheck(x: int) -> int:
        return check(x)

    fn = {"sync": check, "async": acheck, "process": h.explode_seven}[kind]
    with (
        pytest.raises(h.PipelineError, match="bad item 7") as info,
        sflow.flow("m", output_dir=tmp_path) as f,
    ):
        f.task(fn, name="t", map=range(10), retries={"count": 2, "interval": 0.01}, environment=env)
    notes = "\n".join(info.value.__notes__)
    assert "item 7 of 10 of mapped task 't'" in notes
    assert "item 7 of mapped task 't' failed on all 3 attempts" in notes
    assert f.states["t"] is State.FAILED
    assert f.run_dir is not None
    summary = json.loads((f.run_dir / "summary.json").read_text())["tasks"]["t"]
    assert summary["last_item_failure"] == "item 7 attempt 3: PipelineError: ('bad item 7', 7)"
    assert summary["item_failures"] == 3


def test_a_per_item_timeout_stops_only_that_item() -> None:
    """Item 0 hangs until every other item ran; one slot only: its timeout must free the slot."""
    others_done = threading.Event()
    calls: list[int] = []
    lock = threading.Lock()

    def item(x: int) -> int:
        with lock:
            calls.append(x)
            first = calls.count(0) == 1 and x == 0
            if len(set(calls)) == 10:
                others_done.set()
        if first:
            assert others_done.wait(60)  # outlives its timeout; returns once the others ran
        return x

    with sflow.flow("m", record=False) as f:
        f.task(item, name="t", map=range(10), timeout=0.2, retries=1, max_concurrent=1)
    assert f.result.t == list(range(10))
    assert sorted(calls) == [0, *range(10)]  # item 0 twice, every other item once


def test_a_timed_out_async_item_is_cancelled_and_retried_alone() -> None:
    cancelled: list[int] = []
    calls: list[int] = []

    async def item(x: int) -> int:
        calls.append(x)
        if x == 3 and calls.count(3) == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(x)
                raise
        return x

    with sflow.flow("m", record=False) as f:
        f.task(item, name="t", map=range(6), timeout=0.2, retries=1)
    assert f.result.t == list(range(6))
    assert cancelled == [3] and sorted(calls) == [0, 1, 2, 3, 3, 4, 5]


def test_a_per_item_timeout_without_retries_fails_the_map_naming_the_item() -> None:
    async def item(x: int) -> int:
        if x == 2:
            await asyncio.Event().wait()
        return x

    with pytest.raises(TaskTimeout) as info, sflow.flow("m", record=False) as f:
        f.task(item, name="t", map=range(4), timeout=0.1)
    assert info.value.item == 2 and info.value.attempt == 1
    assert "item 2 of task 't' timed out after 0.1s" in str(info.value)
    assert f.states["t"] is State.FAILED


def test_map_timeout_bounds_the_whole_map() -> None:
    started: list[int] = []

    async def item(x: int) -> int:
        started.append(x)
        await asyncio.Event().wait()
        return x

    with pytest.raises(TaskTimeout, match="map_timeout") as info, sflow.flow("m", record=False) as f:
        f.task(item, name="t", map=range(5), map_timeout=0.2, timeout=3600, retries=3)
    assert info.value.item is None and info.value.timeout == 0.2
    assert sorted(started) == list(range(5))  # every item once: none was retried
    assert f.run_result is not None and f.run_result.units["t"].attempts == 1


def test_map_timeout_needs_a_map_and_seconds() -> None:
    f = sflow.flow("m", record=False)
    with pytest.raises(FlowDefinitionError, match="map_timeout only applies to a mapped task"):
        f.task(lambda: 1, name="t", map_timeout=5)
    with pytest.raises(FlowDefinitionError, match="map_timeout must be a positive number"):
        f.task(lambda x: 1, name="t", map=[1], map_timeout=0)
