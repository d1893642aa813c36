"""An Attempt wrapper that adds readiness and failure probes to any started attempt.

The engine never learns what is probed: it sees `has_readiness`, awaits `ready()`, and gets
a failed `Outcome` from `wait()` when a failure probe stopped the attempt. Every probe task
belongs to the wrapper and is finished before `wait()` returns, so nothing outlives the
attempt (and a retry's probes are new objects reading the retry's own log).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sflow.engine.unit import Attempt, Outcome, ended_before_ready
from sflow.probes.checks import Check, build_check
from sflow.probes.loops import await_ready, watch_failure
from sflow.probes.spec import DEFAULT_HOST, ProbeSpec, task_probes


class ProbedAttempt(Attempt):
    """`inner` plus its probes. Construct it inside the running event loop, right after start:
    failure probes (and the readiness deadline) count from that moment."""

    def __init__(
        self,
        inner: Attempt,
        readiness: Sequence[ProbeSpec],
        failure: Sequence[ProbeSpec],
        hosts: Sequence[str],
        grace: float,
        log_of: Callable[[str], Path] | None = None,
    ) -> None:
        self.inner = inner
        self.log_path = inner.log_path
        self.info = inner.info
        self.grace = grace
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._readiness = [(s, build_check(s, hosts, inner.log_path, log_of)) for s in readiness]
        self._failure = [(s, build_check(s, hosts, inner.log_path, log_of)) for s in failure]
        self._watchers = [
            asyncio.ensure_future(watch_failure(check, spec, self._started)) for spec, check in self._failure
        ]
        self._ended = asyncio.Event()
        self._final: Outcome | None = None
        self._ready: asyncio.Future[Outcome] | None = None
        self._done = asyncio.ensure_future(self._supervise())

    # -- Attempt ---------------------------------------------------------------------------------

    @property
    def has_readiness(self) -> bool:
        return bool(self._readiness) or self.inner.has_readiness

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._done)

    async def stop(self, grace: float) -> None:
        """Stop on request: failure probes are disarmed first, so a service going down on
        purpose is not reported as a probe failure."""
        self._disarm()
        await self.inner.stop(grace)
        await self.wait()

    async def ready(self) -> Outcome:
        """Ok when every readiness probe (and the inner attempt's own readiness) has passed."""
        if not self.has_readiness:
            return Outcome(ok=True)
        if self._ready is None:
            if self._ended.is_set():
                return self._ended_before_ready()
            self._ready = asyncio.ensure_future(self._all_ready())
        return await asyncio.shield(self._ready)

    # -- readiness -------------------------------------------------------------------------------

    async def _all_ready(self) -> Outcome:
        probes: list[asyncio.Future[Outcome]] = [
            asyncio.ensure_future(await_ready(check, spec, self._started)) for spec, check in self._readiness
        ]
        if self.inner.has_readiness:
            probes.append(asyncio.ensure_future(self.inner.ready()))
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            return await self._first_verdict(probes, ended)
        except Exception as exc:  # a probe bug must fail the attempt, not crash the engine
            return Outcome(ok=False, reason=f"readiness probe error: {type(exc).__name__}: {exc}")
        finally:
            await _cancel_all([*probes, ended])

    async def _first_verdict(
        self, probes: list[asyncio.Future[Outcome]], ended: asyncio.Future[Any]
    ) -> Outcome:
        pending: set[asyncio.Future[Any]] = {*probes, ended}
        while pending - {ended}:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if ended in done:
                return self._ended_before_ready()
            for probe in done:
                verdict: Outcome = probe.result()
                if not verdict.ok:
                    return verdict
        self.info["ready_at"] = time.time()
        return Outcome(ok=True, reason="ready")

    def _ended_before_ready(self) -> Outcome:
        return ended_before_ready(self._final or Outcome(ok=False))

    # -- life and failure probes ----------------------------------------------------------------

    async def _supervise(self) -> Outcome:
        """The attempt's outcome: the inner one, unless a failure probe fired first."""
        ended = asyncio.ensure_future(self.inner.wait())
        try:
            fired = await self._first_firing(ended)
            if fired is not None:
                self.info["failure_probe"] = fired
                await self.inner.stop(self.grace)
            outcome = await ended
            if fired is not None:
                outcome = outcome.failed(fired)
            self._final = outcome
            return outcome
        finally:
            await self._finish_probes()

    async def _first_firing(self, ended: asyncio.Future[Outcome]) -> str | None:
        pending: set[asyncio.Future[Any]] = {ended, *self._watchers}
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for watcher in done - {ended}:
                if not watcher.cancelled() and watcher.exception() is None and watcher.result():
                    return str(watcher.result())
            if ended in done:
                return None

    def _disarm(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()

    async def _finish_probes(self) -> None:
        """Attempt over: stop the failure probes, let readiness see the end, release files."""
        self._ended.set()
        await _cancel_all(self._watchers)
        if self._ready is not None:
            await asyncio.wait([self._ready])
        for _, check in (*self._readiness, *self._failure):
            check.close()


async def _cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until each has really finished."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def wrap_with_probes(attempt: Attempt, task_model: Any, hosts: Sequence[str], grace: float) -> Attempt:
    """`attempt` with the probes of `task_model.probes`, or `attempt` itself when it has none.

    Parsing errors raise ValueError; call `task_probes()` before starting the attempt to
    surface them while nothing is running yet.
    """
    probes = task_probes(task_model, default_host=hosts[0] if hosts else DEFAULT_HOST)
    if not probes:
        return attempt
    return ProbedAttempt(attempt, probes.readiness, probes.failure, hosts, grace)


__all__ = ["Check", "ProbedAttempt", "wrap_with_probes"]
