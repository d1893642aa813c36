"""The one stop path: ask (TERM), give the grace, force (KILL), report which signal ended it.

Everything sflow stops follows it: a task's process group, the processes tasks left behind, an
srun and its step, a docker client and its container. Each caller brings its own "send this
signal" callables and its own "it is gone" awaitable; the order, the deadlines and what a second,
impatient stop does (a second Ctrl-C) are written here once.

Time is the event loop's, so a test loop with virtual time drives every wait of a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

GRACE = None  # a step's `wait` that is the grace given to `Stopper.stop`


class Step(msgspec.Struct, frozen=True):
    """One signal of a stop: its name (as reported), how to send it, how long to await the end after it.

    `send` may be a plain function or return an awaitable (a `scancel`, a `docker stop`), which is
    awaited before the wait begins. `wait` is seconds, `GRACE` for the grace given to the stop, or
    `math.inf` for as long as it takes.
    """

    signal: str
    send: Callable[[], object]
    wait: float | None = GRACE


class Stopped(msgspec.Struct, frozen=True):
    """How a stop ended: the last signal sent before the end (None: it was over before any), and
    whether the end was seen (False: even the last wait ran out)."""

    signal: str | None
    gone: bool


class Stopper:
    """Stop one thing by its steps, once; a later, shorter grace cuts what is left of the grace."""

    def __init__(self, gone: Callable[[], Awaitable[object]], *steps: Step) -> None:
        if not steps:
            raise ValueError("a stop needs at least one step")
        self._gone = gone
        self._steps = steps
        self._run: asyncio.Future[Stopped] | None = None
        self._grace = 0.0  # the grace of the first call: a GRACE wait lasts that long ...
        self._deadline = math.inf  # ... or ends at this loop time, set by a later, shorter stop
        self._hurried = asyncio.Event()

    @property
    def started(self) -> bool:
        """Whether the first signal has been (or is being) sent."""
        return self._run is not None

    async def stop(self, grace: float) -> Stopped:
        """Run the steps (first call), or cut what is left of the grace to `grace` from now (later
        calls); return once the stop is over."""
        if self._run is None:
            self._grace = max(0.0, grace)
            self._run = asyncio.ensure_future(self._sequence())
        else:
            self._deadline = min(self._deadline, asyncio.get_running_loop().time() + max(0.0, grace))
            self._hurried.set()
        return await asyncio.shield(self._run)

    async def finished(self) -> Stopped | None:
        """The outcome of a stop under way (None when none was started)."""
        return None if self._run is None else await asyncio.shield(self._run)

    async def _sequence(self) -> Stopped:
        gone = asyncio.ensure_future(self._gone())
        try:
            sent: str | None = None
            for step in self._steps:
                if gone.done():
                    return Stopped(sent, True)
                result = step.send()
                if inspect.isawaitable(result):
                    await result
                sent = step.signal
                if await self._await_end(gone, step.wait):
                    return Stopped(sent, True)
            return Stopped(sent, False)
        finally:
            if not gone.done():
                gone.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gone

    async def _await_end(self, gone: asyncio.Future[Any], wait: float | None) -> bool:
        """Wait up to `wait` for `gone`; True once it is. A GRACE wait may be cut by a later stop."""
        if wait is not GRACE:
            await asyncio.wait({gone}, timeout=None if wait == math.inf else wait)
            return gone.done()
        loop = asyncio.get_running_loop()
        self._deadline = min(self._deadline, loop.time() + self._grace)
        while not gone.done() and loop.time() < self._deadline:
            self._hurried.clear()
            hurried: asyncio.Future[Any] = asyncio.ensure_future(self._hurried.wait())
            try:
                await asyncio.wait(
                    {gone, hurried}, timeout=self._deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                hurried.cancel()
        return gone.done()


async def poll_until(condition: Callable[[], bool], first: float = 0.005, longest: float = 0.2) -> None:
    """Return once `condition()` is true, asking again after a delay that doubles up to `longest`.

    For ends no event announces (a process group's last member, an adopted orphan, a Slurm step).
    """
    delay = first
    while not condition():
        await asyncio.sleep(delay)
        delay = min(delay * 2, longest)
