"""Fixtures every test folder shares, instead of a copy in each.

- `free_port()`: a TCP port nobody listens on right now (the kernel picks it), so tests
  running side by side never compete for a fixed one;
- `run_async(scenario)`: a scenario coroutine run on a fresh event loop, bounded so a hang
  fails the test instead of the whole session;
- `wait_until(condition)`: waits for a condition (never a fixed sleep), failing with what
  it waited for.

The Slurm leak check (`no_leaked_jobs`) lives with the cluster fixtures in
`tests/integration/conftest.py`.
"""

from __future__ import annotations

import asyncio
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
