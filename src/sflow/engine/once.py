"""A coroutine started by its first caller, whose one result every caller awaits.

An attempt's end is awaited by the engine, by `stop()` and by probes at the same time; the work
behind it (reaping a process group, reading a step's verdict, releasing GPUs) must run once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """`await once()` starts `make()` the first time and returns its result to every caller.

    Each caller waits behind a shield: cancelling one caller stops its wait, not the work the
    others wait on.
    """

    def __init__(self, make: Callable[[], Awaitable[T]]) -> None:
        self._make = make
        self._future: asyncio.Future[T] | None = None

    @property
    def started(self) -> bool:
        """Whether a first caller has started the work."""
        return self._future is not None

    async def __call__(self) -> T:
        if self._future is None:
            self._future = asyncio.ensure_future(self._make())
        return await asyncio.shield(self._future)
