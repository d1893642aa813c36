"""Fixtures every test folder shares, instead of a copy in each.

- `free_port()`: a TCP port nobody listens on right now (the kernel picks it), so tests
  running side by side never compete for a fixed one;
- `run_async(scenario)`: a scenario coroutine run on a fresh event loop, bounded so a hang
  fails the test instead of the whole session;
- `wait_until(condition)`: waits for a condition (never a fixed sleep), failing with what
  it waited for;
- `virtual_time(scenario)`: a scenario run on an event loop whose clock moves only when
  nothing is ready to run, so a test of timeouts, graces and back-offs advances time instead
  of sleeping, and asserts on the loop's time (`asyncio.get_running_loop().time()`).

The Slurm leak check (`no_leaked_jobs`) lives with the cluster fixtures in
`tests/integration/conftest.py`.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[..., int]:
    """`free_port(host="127.0.0.1")` -> a port nothing listens on (bind to 0, let the kernel choose)."""
    return _free_port


def _run_async(scenario: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T], limit: float = 60.0) -> T:
    async def bounded() -> T:
        work = scenario() if callable(scenario) else scenario
        return await asyncio.wait_for(work, limit)

    return asyncio.run(bounded())


@pytest.fixture
def run_async() -> Callable[..., Any]:
    """`run_async(scenario, limit=60)`: `scenario()` (or an awaitable) on a new loop, at most `limit` s."""
    return _run_async


def _wait_until(condition: Callable[[], object], what: str, limit: float = 60.0, poll: float = 0.01) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit:g}s waiting for {what}")
        time.sleep(poll)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """`wait_until(condition, what, limit=60)`: return once `condition()` is true, else fail naming `what`."""
    return _wait_until


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop with a clock of its own: when nothing is ready to run, instead of waiting for
    the next timer it moves its clock there. A 10-minute grace passes at once, and exactly.

    Only for scenarios with no real I/O to wait for (fake processes, futures, timers): a real
    process or socket would be overtaken by the clock.
    """

    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self._now = 0.0
        select = self._selector.select  # type: ignore[attr-defined]

        def select_or_advance(timeout: float | None = None) -> list[Any]:
            ready = select(0)
            if not ready and timeout:
                self._now += timeout  # asyncio asks for exactly the time to its next timer
            elif not ready and timeout is None:
                raise RuntimeError("the scenario waits for something no timer or callback will bring")
            return ready

        self._selector.select = select_or_advance  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._now


def _virtual_time(scenario: Callable[[], Coroutine[Any, Any, T]], limit: float = 3600.0) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario(), limit))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
def virtual_time() -> Callable[..., Any]:
    """`virtual_time(scenario, limit=3600)`: `scenario()` on a `VirtualTimeLoop`; a hang fails at
    once (its `limit`, in virtual seconds, passes instantly) instead of stalling the session."""
    return _virtual_time
