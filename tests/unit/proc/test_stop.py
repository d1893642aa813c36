"""The one stop path, on a fake process and the virtual clock: which signal, when, and what ended it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from sflow.proc.stop import Step, Stopped, Stopper, poll_until


class FakeProcess:
    """Ends `ends_after[signal]` seconds after it gets that signal; a signal not listed is ignored."""

    def __init__(self, **ends_after: float) -> None:
        self.ends_after = ends_after
        self.received: list[tuple[float, str]] = []
        self.ended_at: float | None = None
        self._ended = asyncio.get_running_loop().create_future()

    def signal(self, name: str) -> Callable[[], None]:
        def send() -> None:
            loop = asyncio.get_running_loop()
            self.received.append((loop.time(), name))
            if name in self.ends_after:
                loop.call_later(self.ends_after[name], self._end)

        return send

    def _end(self) -> None:
        if not self._ended.done():
            self.ended_at = asyncio.get_running_loop().time()
            self._ended.set_result(None)

    async def gone(self) -> None:
        await asyncio.shield(self._ended)

    def term_then_kill(self, kill_wait: float = 5.0) -> Stopper:
        return Stopper(
            self.gone, Step("TERM", self.signal("TERM")), Step("KILL", self.signal("KILL"), kill_wait)
        )


def test_a_process_that_ends_on_term_gets_no_kill(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> tuple[Stopped, FakeProcess]:
        proc = FakeProcess(TERM=3.0, KILL=0.0)
        return await proc.term_then_kill().stop(grace=10), proc

    stopped, proc = virtual_time(scenario)
    assert stopped == Stopped("TERM", gone=True)
    assert proc.received == [(0.0, "TERM")]
    assert proc.ended_at == 3.0


def test_a_process_that_ignores_term_is_killed_when_the_grace_ends(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> tuple[Stopped, FakeProcess]:
        proc = FakeProcess(KILL=0.01)
        return await proc.term_then_kill().stop(grace=10), proc

    stopped, proc = virtual_time(scenario)
    assert stopped == Stopped("KILL", gone=True)
    assert proc.received == [(0.0, "TERM"), (10.0, "KILL")]


def test_a_second_shorter_stop_cuts_the_grace(virtual_time: Callable[..., Any]) -> None:
    """A second Ctrl-C: the stop under way escalates now; both callers see the same end."""

    async def scenario() -> tuple[list[Stopped], FakeProcess]:
        proc = FakeProcess(KILL=0.0)
        stopper = proc.term_then_kill()
        first = asyncio.ensure_future(stopper.stop(grace=600))
        await asyncio.sleep(5)
        second = await stopper.stop(grace=0)
        return [await first, second], proc

    results, proc = virtual_time(scenario)
    assert results == [Stopped("KILL", gone=True)] * 2
    assert proc.received == [(0.0, "TERM"), (5.0, "KILL")]


def test_a_second_longer_stop_does_not_extend_the_grace(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> FakeProcess:
        proc = FakeProcess(KILL=0.0)
        stopper = proc.term_then_kill()
        first = asyncio.ensure_future(stopper.stop(grace=5))
        await asyncio.sleep(1)
        await stopper.stop(grace=600)
        await first
        return proc

    assert virtual_time(scenario).received == [(0.0, "TERM"), (5.0, "KILL")]


def test_the_grace_begins_once_the_first_signal_is_sent(virtual_time: Callable[..., Any]) -> None:
    """A signal sent by a command (`scancel`, `docker stop`) is awaited; the grace counts from its end."""

    async def scenario() -> FakeProcess:
        proc = FakeProcess(KILL=0.0)

        async def slow_term() -> None:
            await asyncio.sleep(3)
            proc.signal("TERM")()

        await Stopper(proc.gone, Step("TERM", slow_term), Step("KILL", proc.signal("KILL"), 5)).stop(grace=10)
        return proc

    assert virtual_time(scenario).received == [(3.0, "TERM"), (13.0, "KILL")]


def test_steps_between_term_and_kill_get_their_own_wait(virtual_time: Callable[..., Any]) -> None:
    """The srun shape: TERM to the step, the grace; TERM to srun and scancel, 15 s; then KILL."""

    async def scenario() -> tuple[Stopped, FakeProcess]:
        proc = FakeProcess(KILL=0.5)
        stopper = Stopper(
            proc.gone,
            Step("TERM", proc.signal("TERM")),
            Step("scancel", proc.signal("scancel"), 15),
            Step("KILL", proc.signal("KILL"), math.inf),
        )
        return await stopper.stop(grace=10), proc

    stopped, proc = virtual_time(scenario)
    assert stopped == Stopped("KILL", gone=True)
    assert proc.received == [(0.0, "TERM"), (10.0, "scancel"), (25.0, "KILL")]
    assert proc.ended_at == 25.5


def test_a_stop_that_outlasts_its_last_wait_says_so(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> tuple[Stopped, float]:
        proc = FakeProcess()  # ignores everything (a process stuck in the kernel)
        stopped = await proc.term_then_kill(kill_wait=5).stop(grace=2)
        return stopped, asyncio.get_running_loop().time()

    assert virtual_time(scenario) == (Stopped("KILL", gone=False), 7.0)


def test_finished_waits_for_the_stop_under_way(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> tuple[Stopped | None, Stopped | None, float]:
        proc = FakeProcess(TERM=4.0)
        stopper = proc.term_then_kill()
        before = await stopper.finished()
        stop = asyncio.ensure_future(stopper.stop(grace=10))
        await asyncio.sleep(0)
        during = await stopper.finished()
        return before, during if during == await stop else None, asyncio.get_running_loop().time()

    assert virtual_time(scenario) == (None, Stopped("TERM", gone=True), 4.0)


def test_a_stop_needs_a_step() -> None:
    with pytest.raises(ValueError):
        Stopper(asyncio.sleep)


def test_poll_until_asks_again_with_a_growing_delay(virtual_time: Callable[..., Any]) -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        asked: list[float] = []

        def condition() -> bool:
            asked.append(loop.time())
            return loop.time() >= 1.0

        await poll_until(condition, first=0.1, longest=0.4)
        return asked

    assert virtual_time(scenario) == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.1])
