"""The event loop that runs a DAG of units.

Every wake-up comes from an event: an attempt ending, a readiness probe passing, a
timeout or a retry back-off expiring, or a stop request (Ctrl-C, SIGTERM, a failure).
There is no polling loop: a dependent starts the moment its last dependency is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import msgspec

from sflow.engine.graph import Graph
from sflow.engine.unit import Attempt, Event, Outcome, State, Unit, ended_before_ready
from sflow.errors import UserError

Listener = Callable[[Event], None]
log = logging.getLogger(__name__)


class UnitResult(msgspec.Struct):
    """Final word on one unit."""

    state: State = State.PENDING
    attempts: int = 0
    outcome: Outcome | None = None
    started: float | None = None
    ready: float | None = None
    ended: float | None = None


class RunResult(msgspec.Struct):
    """Final word on a run: per-unit results and why it stopped early, if it did."""

    units: dict[str, UnitResult]
    stop_reason: str = ""
    interrupted: bool = False
    elapsed: float = 0.0
    order: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stop_reason and all(r.state is State.SUCCEEDED for r in self.units.values())

    def failed(self) -> list[str]:
        return [n for n in self.order if self.units[n].state is State.FAILED]


class Engine:
    """Runs units as soon as their dependencies are done; fails fast unless `keep_going`."""

    def __init__(
        self,
        units: Sequence[Unit],
        *,
        keep_going: bool = False,
        timeout: float | None = None,
        grace: float = 10.0,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.units = {u.name: u for u in units}
        self.graph = Graph({u.name: u.deps for u in units})
        self.keep_going = keep_going
        self.timeout = timeout
        self.grace = grace
        self.listeners = list(listeners)
        self.results = {name: UnitResult() for name in self.units}
        self._unmet = {u.name: len(self.graph.deps[u.name]) for u in units}
        self._attempts: dict[str, Attempt] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._stopped_services: set[str] = set()
        self._stop_reason = ""
        self._interrupted = False
        self._stopping: asyncio.Event | None = None
        self._all_done: asyncio.Event | None = None
        self._remaining = len(self.units)
        self._background: set[asyncio.Future[None]] = set()
        self._ready_live: set[str] = set()
        self._began: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._order: list[str] | None = None

    # -- public ---------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Run every unit to a final state and return the results; tears down on cancellation."""
        order = self._order = self.graph.order()
        self._stopping = asyncio.Event()
        self._all_done = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # its clock times the run (a test loop's is virtual)
        self._began = self._loop.time()
        try:
            if not self.units:
                self._all_done.set()
            for name in order:  # results kept from an earlier run count as done at once
                if self.units[name].kept:
                    self._finish(name, State.SUCCEEDED, Outcome(ok=True, reason=self.units[name].kept))
            for name in order:
                if self._unmet[name] == 0 and self._startable(name):
                    self._launch(name)
            await asyncio.wait_for(self._all_done.wait(), self.timeout)
            await self._wait_drivers()  # services being stopped, stop helpers: nothing outlives run()
        except asyncio.TimeoutError:
            self.request_stop(f"workflow timed out after {_secs(self.timeout)}")
            await self._wait_drivers()
        except asyncio.CancelledError:
            self.request_stop("interrupted", interrupted=True)
            await asyncio.shield(self._wait_drivers())
            raise
        finally:
            if self._stopping is not None and not self._all_done.is_set():
                self.request_stop(self._stop_reason or "stopped")
                await asyncio.shield(self._wait_drivers())
        return self.snapshot()

    def snapshot(self) -> RunResult:
        """The results so far: the final word once `run` returned, what is known if it was cancelled."""
        return RunResult(
            units=self.results,
            stop_reason=self._stop_reason,
            interrupted=self._interrupted,
            elapsed=self._loop.time() - self._began if self._loop and self._began is not None else 0.0,
            order=self._order if self._order is not None else self.graph.order(),
        )

    def request_stop(self, reason: str, *, interrupted: bool = False, force: bool = False) -> None:
        """Stop the run: nothing new starts, running attempts get TERM then KILL after the grace.

        `force` (a second Ctrl-C) skips what is left of the grace: every live attempt is killed now.
        """
        if self._stopping is None:
            return
        if self._stopping.is_set():
            if force:
                self.grace = 0.0
                for live in list(self._attempts.values()):
                    self._spawn(live.stop(0.0))
            return
        self._stop_reason = reason
        self._interrupted = interrupted
        self._stopping.set()
        for name, result in self.results.items():
            if result.state is State.PENDING and name not in self._drivers:
                self._finish(name, State.CANCELLED, Outcome(ok=False, reason=f"not started: {reason}"))
        for name, driver in list(self._drivers.items()):
            current = self._attempts.get(name)
            if current is not None:
                self._spawn(self._stop(name, current))
            elif not driver.done():
                driver.cancel()

    # -- scheduling -----------------------------------------------------------------------------

    def _startable(self, name: str) -> bool:
        return name not in self._drivers and self.results[name].state is State.PENDING

    def _launch(self, name: str) -> None:
        self._drivers[name] = asyncio.ensure_future(self._drive(self.units[name]))

    async def _wait_drivers(self) -> None:
        while pending := [d for d in (*self._drivers.values(), *self._background) if not d.done()]:
            await asyncio.wait(pending)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a helper coroutine (a stop request) that the run waits for before it returns."""
        future = asyncio.ensure_future(coro)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _satisfied(self, name: str) -> None:
        """`name` completed or became ready: start dependents whose last dependency it was."""
        if self._stopping is not None and self._stopping.is_set():
            return
        for child in self.graph.dependents[name]:
            self._unmet[child] -= 1
            if self._unmet[child] == 0 and self._startable(child) and not self.units[child].kept:
                self._launch(child)

    async def _drive(self, unit: Unit) -> None:
        """All attempts of one unit, from first start to a final state."""
        try:
            await self._attempt_loop(unit)
        except asyncio.CancelledError:
            reason = self._stop_reason or "cancelled"
            self._finish(unit.name, State.CANCELLED, Outcome(ok=False, reason=reason))
        except Exception as exc:  # a bug or an I/O error below us must fail the unit, never hang the run
            log.exception("task '%s': internal error", unit.name)
            self._fail(unit.name, Outcome(ok=False, reason=f"internal error: {exc!r}", retryable=False))

    async def _attempt_loop(self, unit: Unit) -> None:
        assert self._stopping is not None
        attempt_no = 0
        while True:
            attempt_no += 1
            outcome = await self._one_attempt(unit, attempt_no)
            if outcome.ok or unit.name in self._stopped_services:
                self._finish(unit.name, State.SUCCEEDED, outcome)
                return
            # during a stop an attempt ends because it was stopped: cancelled; one that failed for a
            # reason no retry can fix (its allocation is gone, which may be what stopped the run)
            # failed all the same
            if self._stopping.is_set() and outcome.retryable:
                self._finish(unit.name, State.CANCELLED, outcome)
                return
            if (
                not outcome.retryable
                or attempt_no > unit.retries.count
                or self.results[unit.name].ready is not None
            ):
                self._fail(unit.name, outcome)
                return
            delay = unit.retries.delay(attempt_no - 1)
            self._emit(unit.name, State.RETRYING, attempt_no, outcome, message=f"retry in {_secs(delay)}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                self._finish(unit.name, State.CANCELLED, outcome)
                return

    async def _one_attempt(self, unit: Unit, attempt_no: int) -> Outcome:
        result = self.results[unit.name]
        try:
            attempt = await unit.start(attempt_no)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a launcher that cannot start is a failed attempt, not a crash
            result.attempts = attempt_no
            # a mistake in the input (an undefined expression) would fail every attempt the same way
            return Outcome(
                ok=False, reason=f"could not start: {exc}", retryable=not isinstance(exc, UserError)
            )
        self._attempts[unit.name] = attempt
        result.attempts = attempt_no
        result.started = result.started or time.time()
        self._emit(unit.name, State.RUNNING, attempt_no, attempt=attempt)
        assert self._stopping is not None
        if self._stopping.is_set():  # a stop arrived while the attempt was starting
            await self._stop(unit.name, attempt)
        try:
            return await self._supervise(unit, attempt, attempt_no)
        finally:
            self._attempts.pop(unit.name, None)

    async def _supervise(self, unit: Unit, attempt: Attempt, attempt_no: int) -> Outcome:
        """Wait for the attempt to end, for readiness, or for its timeout, whichever is first."""
        deadline = None if unit.timeout is None else asyncio.get_running_loop().time() + unit.timeout
        ended = asyncio.ensure_future(attempt.wait())
        if attempt.has_readiness:
            ready = asyncio.ensure_future(attempt.ready())
            await asyncio.wait({ended, ready}, timeout=_left(deadline), return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and not ended.done():
                verdict = ready.result()
                if not verdict.ok:
                    await self._stop(unit.name, attempt)
                    await ended
                    return verdict
                self._became_ready(unit.name, attempt_no, attempt)
            elif ended.done():
                ready.cancel()
                return ended_before_ready(ended.result())
            else:
                ready.cancel()
        done, _ = await asyncio.wait({ended}, timeout=_left(deadline))
        if not done:
            await self._stop(unit.name, attempt)
            outcome = await ended
            return Outcome(ok=False, reason=f"timed out after {_secs(unit.timeout)}", info=outcome.info)
        outcome = ended.result()
        if self.results[unit.name].ready is not None and unit.name not in self._stopped_services:
            return self._service_exited(unit.name, outcome)
        return outcome

    def _became_ready(self, name: str, attempt_no: int, attempt: Attempt) -> None:
        self.results[name].ready = time.time()
        self._emit(name, State.READY, attempt_no, attempt=attempt)
        self._satisfied(name)
        self._maybe_stop_services()

    def _service_exited(self, name: str, outcome: Outcome) -> Outcome:
        """A ready service ended on its own: fine only once none of its dependents still needs it."""
        waiting = [c for c in self.graph.descendants(name) if not self.results[c].state.done]
        if not waiting:
            return outcome
        detail = outcome.reason or "exited"
        return outcome.failed(f"service ended: {detail} (still needed by {', '.join(waiting[:3])})")

    # -- final states -----------------------------------------------------------------------------

    def _fail(self, name: str, outcome: Outcome) -> None:
        if not self.keep_going:
            # the failure is recorded before the stop it causes, so events read cause before
            # effect; the stop comes before the settling: ready services are then cancelled with
            # the rest, not retired as if their work were done (as `_settle` would, were only
            # they left)
            if self._record(name, State.FAILED, outcome):
                self.request_stop(f"task '{name}' failed")
                self._settle(name, State.FAILED)
            return
        self._finish(name, State.FAILED, outcome)
        for child in self.graph.descendants(name):
            if self.results[child].state is State.PENDING and child not in self._drivers:
                self._finish(child, State.SKIPPED, Outcome(ok=False, reason=f"'{name}' failed"))

    def _finish(self, name: str, state: State, outcome: Outcome) -> None:
        if self._record(name, state, outcome):
            self._settle(name, state)

    def _record(self, name: str, state: State, outcome: Outcome) -> bool:
        """Give `name` its final state and announce it; False if it already had one."""
        result = self.results[name]
        if result.state.done:
            return False
        self._ready_live.discard(name)
        result.state = state
        result.outcome = outcome
        result.ended = time.time()
        self._emit(name, state, result.attempts, outcome)
        return True

    def _settle(self, name: str, state: State) -> None:
        """What a final state sets off: dependents start, the run ends, idle services stop."""
        result = self.results[name]
        self._remaining -= 1
        if state is State.SUCCEEDED and result.ready is None:
            self._satisfied(name)
        if self._remaining == 0:
            assert self._all_done is not None
            self._all_done.set()
        else:
            self._maybe_stop_services()

    def _maybe_stop_services(self) -> None:
        """When only ready services are left, stop them: the work they served is done.

        Not during a stop (failure, Ctrl-C): then services are cancelled like everything else.
        """
        assert self._stopping is not None
        if self._stopping.is_set() or self._remaining == 0 or len(self._ready_live) != self._remaining:
            return
        for name in list(self._ready_live):
            if name not in self._stopped_services and name in self._attempts:
                self._stopped_services.add(name)
                self._spawn(self._stop(name, self._attempts[name]))

    async def _stop(self, name: str, attempt: Attempt) -> None:
        """Stop a live attempt (TERM, the grace, KILL); listeners hear it is stopping meanwhile."""
        self._emit(name, State.STOPPING, self.results[name].attempts, message=f"grace {_secs(self.grace)}")
        await attempt.stop(self.grace)

    def _emit(
        self,
        name: str,
        state: State,
        attempt_no: int,
        outcome: Outcome | None = None,
        *,
        attempt: Attempt | None = None,
        message: str = "",
    ) -> None:
        if state in (State.RUNNING, State.READY):
            self.results[name].state = state
        if state is State.READY:
            self._ready_live.add(name)
        event = Event(name, state, attempt_no, outcome=outcome, attempt_obj=attempt, message=message)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a failing view or record must not stop the scheduling
                log.exception("listener failed on %s %s", name, state.value)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}s"
