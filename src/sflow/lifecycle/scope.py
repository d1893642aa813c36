"""One run's lifetime around the engine, the same for both doors.

A YAML workflow and a flow of functions differ in how their units are made (backends to
allocate, executors to open) and what they free at the end; this module owns the rest:
the run directory and its listeners, the engine, the teardown that runs whatever happens
(success, failure, Ctrl-C, SIGTERM, an error), and summary.json, written last.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sflow.engine import Engine, Event, Outcome, RunResult, State, Unit, UnitResult
from sflow.lifecycle.settings import RunSettings
from sflow.proc.orphans import stop_adopted
from sflow.record.run_dir import RunRecord

Listener = Callable[[Event], None]

_ACTIVE: set[RunScope] = set()  # runs whose engine a signal should stop (see sflow.lifecycle.host)
_RAN: weakref.WeakSet[RunScope] = weakref.WeakSet()  # every run that started, while it is referenced


class NotStarted(Exception):
    """The run cannot start, and that is its result rather than an error (Slurm refused the allocation)."""


class RunScope:
    """Record, engine, teardown and summary of one run; `run` may be awaited once."""

    def __init__(
        self,
        name: str,
        settings: RunSettings,
        listeners: Iterable[Listener] = (),
        resumed_from: str | None = None,
    ) -> None:
        self.settings = settings
        self.listeners = list(listeners)
        self.record = (
            RunRecord(settings.output_path(), name, settings.run_id, resumed_from)
            if settings.record
            else None
        )
        self.engine: Engine | None = None
        self.result: RunResult | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self,
        order: Sequence[str],
        prepare: Callable[[], Awaitable[Sequence[Unit]]],
        release: Callable[[], Awaitable[None]],
        *,
        timeout: float | None = None,
        summary: Callable[[], dict[str, Any]] | None = None,
    ) -> RunResult:
        """Make the units (`prepare`), run them, free what `prepare` took (`release`).

        `order` names every unit for a run that ends before it starts; `timeout` bounds the run
        when the settings do not; `summary` adds the door's own fields to summary.json.
        """
        why_not_started = "interrupted before any task started"
        self.loop = asyncio.get_running_loop()
        _ACTIVE.add(self)
        _RAN.add(self)
        try:
            try:
                units = await prepare()
            except NotStarted as exc:
                self.note(str(exc))
                self.result = _not_started(order, str(exc))
                return self.result
            self.engine = Engine(
                units,
                keep_going=self.settings.keep_going,
                timeout=self.settings.timeout if self.settings.timeout is not None else timeout,
                grace=self.settings.grace,
                listeners=[*([self.record.on_event] if self.record else []), *self.listeners],
            )
            self.result = await self.engine.run()
            return self.result
        except Exception as exc:
            why_not_started = f"could not start: {exc}"
            raise
        finally:
            _ACTIVE.discard(self)
            await asyncio.shield(self._teardown(release))
            if self.result is None:  # cancelled, or an error: record what is known
                engine = self.engine
                self.result = (
                    engine.snapshot() if engine is not None else _not_started(order, why_not_started)
                )
            if self.record is not None:
                self.record.write_summary(self.result, extra=summary() if summary else None)
                self.record.close()

    def request_stop(self, reason: str, *, interrupted: bool = False, force: bool = False) -> bool:
        """Stop the running engine (TERM, grace, KILL); False when no engine runs yet."""
        if self.engine is None:
            return False
        self.engine.request_stop(reason, interrupted=interrupted, force=force)
        return True

    def note(self, message: str) -> None:
        """A line in sflow.log that is not a task event (allocation, teardown)."""
        if self.record is not None:
            self.record.note(message)

    async def _teardown(self, release: Callable[[], Awaitable[None]]) -> None:
        """Processes tasks detached from their group (`setsid`) do not outlive the run; then release."""
        grace = self.engine.grace if self.engine is not None else self.settings.grace
        stopped = await stop_adopted(grace)
        if stopped:
            pids = ", ".join(map(str, stopped[:10])) + (" ..." if len(stopped) > 10 else "")
            self.note(f"stopped {len(stopped)} process(es) that tasks had left running (pids {pids})")
        await release()


def active_scopes(loop: asyncio.AbstractEventLoop) -> list[RunScope]:
    """The runs in progress on `loop`."""
    return [scope for scope in _ACTIVE if scope.loop is loop]


def run_logs(loop: asyncio.AbstractEventLoop) -> list[Path]:
    """sflow.log of each recorded run that ran on `loop`."""
    return [scope.record.run_dir / "sflow.log" for scope in list(_RAN) if scope.loop is loop and scope.record]


def _not_started(order: Sequence[str], reason: str) -> RunResult:
    """The result of a run that ended before its engine ran (allocation refused, interrupted)."""
    outcome = Outcome(ok=False, reason=f"not started: {reason}")
    units = {name: UnitResult(state=State.CANCELLED, outcome=outcome) for name in order}
    return RunResult(units=units, stop_reason=reason, interrupted="interrupted" in reason, order=list(order))
