"""Running a resolved flow: one engine unit per task, results and errors kept by name.

The engine decides *when* (a task starts the moment its last upstream task is done; no
level-by-level barrier), retries and stops; this module decides *what* an attempt does:
gather the upstream values, run the function where its environment says, time it out,
and keep the value or the original exception for the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sflow.dispatch.errors import DispatchTimeout
from sflow.engine import Attempt, Engine, Outcome, RetryPolicy, RunResult, State, Unit
from sflow.flow.attempt import TaskAttempt, TaskLog, short_reason
from sflow.flow.errors import TaskTimeout
from sflow.flow.fanout import MISSING, NEVER_CALLED, ItemReport, ItemRetry, within
from sflow.flow.resolve import ResolvedTask
from sflow.flow.resume import Resumed, fingerprints, plan_resume, store_result
from sflow.flow.runners import Runners
from sflow.lifecycle.scope import RunScope
from sflow.lifecycle.settings import RunSettings
from sflow.record.run_dir import RunRecord
from sflow.slurm.journal import SlurmJournal


class _MapState:
    """Items of a mapped task and their results so far (kept across retries)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.out: list[Any] = [MISSING] * len(items)

    def missing(self) -> list[int]:
        return [i for i, value in enumerate(self.out) if value is MISSING]


class FlowRun:
    """One execution of a flow's resolved tasks."""

    def __init__(
        self,
        name: str,
        tasks: Sequence[ResolvedTask],
        inputs: Mapping[str, Any],
        settings: RunSettings,
        resume: str | Path | None = None,
    ) -> None:
        self.name = name
        self.tasks = {t.name: t for t in tasks}
        self.settings = settings
        self.inputs = dict(inputs)
        self.resume_ref = resume
        self.fingerprints: dict[str, str] = {}
        self.resumed: Resumed | None = None
        self.values: dict[str, Any] = dict(inputs)  # inputs, then task results as they arrive
        self.errors: dict[str, BaseException] = {}
        self.scope: RunScope | None = None
        self._maps: dict[str, _MapState] = {}
        self._runners = Runners()

    @property
    def engine(self) -> Engine | None:
        return self.scope.engine if self.scope is not None else None

    @property
    def record(self) -> RunRecord | None:
        return self.scope.record if self.scope is not None else None

    async def run(self) -> RunResult:
        """Run to a final state; executors are closed (remote work cancelled) whatever happens."""
        if self.settings.record:  # before the new run exists: `latest` is the one before it
            await asyncio.to_thread(self._plan_resume)
        earlier = self.resumed.earlier.run_id if self.resumed else None
        self.scope = RunScope(self.name, self.settings, resumed_from=earlier)
        if self.scope.record is not None:  # the Slurm jobs its tasks submit, as they are submitted
            self._runners.journal = SlurmJournal(self.scope.record.run_dir)

        async def prepare() -> list[Unit]:
            if self.record is not None:
                await asyncio.to_thread(self._write_plan, self.record)
            return [self._unit(t) for t in self.tasks.values()]

        return await self.scope.run(
            list(self.tasks), prepare, self._runners.aclose, summary=lambda: {"front_door": "python"}
        )

    # -- resuming --------------------------------------------------------------------------------

    def _plan_resume(self) -> None:
        """Fingerprint every task (a later run may resume this one) and decide what is kept."""
        tasks = list(self.tasks.values())
        self.fingerprints = fingerprints(tasks, self.inputs)
        if self.resume_ref is not None:
            output_dir = self.settings.output_path()
            self.resumed = plan_resume(self.name, output_dir, self.resume_ref, tasks, self.fingerprints)
            self.values.update(self.resumed.results)

    def _write_plan(self, record: RunRecord) -> None:
        """plan.json (dependencies, fingerprints, resume decisions), kept tasks linked to their run."""
        decisions = self.resumed.decisions if self.resumed else {}
        plan: dict[str, dict[str, Any]] = {}
        for name, task in self.tasks.items():
            plan[name] = {"task": name, "deps": list(task.deps), "fingerprint": self.fingerprints[name]}
            if name in decisions:
                plan[name]["resume"] = ("keep: " if decisions[name].keep else "run: ") + decisions[
                    name
                ].reason
        record.write_plan(plan)
        if self.resumed is None:
            return
        for line in self.resumed.lines():
            record.note(line)
        for name in self.resumed.kept():
            made = self.resumed.earlier.tasks[name]
            assert made.origin_dir is not None
            record.keep(name, made.origin_dir, made.origin_run, made.entry)

    # -- units -----------------------------------------------------------------------------------

    def _unit(self, task: ResolvedTask) -> Unit:
        async def start(attempt_no: int) -> Attempt:
            return await self._start(task, attempt_no)

        decision = self.resumed.decisions.get(task.name) if self.resumed else None
        kept = f"kept: {decision.reason}" if decision is not None and decision.keep else ""
        # a map's retries are its items' own: the map as a whole is attempted once
        retries = RetryPolicy() if task.mapped else task.retries
        return Unit(name=task.name, start=start, deps=task.deps, retries=retries, kept=kept)

    async def _start(self, task: ResolvedTask, attempt_no: int) -> Attempt:
        env = task.environment
        info: dict[str, Any] = {"environment": env.name, "executor": env.executor}
        log: TaskLog | None = None
        if self.record is not None:
            path = await asyncio.to_thread(self.record.attempt_log, task.name, attempt_no)
            log = TaskLog(path, task.name, attempt_no, f"{env.name} (executor {env.executor})")
            await log.start()
        work = self._attempt(task, attempt_no, info, log)
        return TaskAttempt(work, info, log.path if log else None)

    async def _attempt(
        self, task: ResolvedTask, attempt_no: int, info: dict[str, Any], log: TaskLog | None
    ) -> Outcome:
        """Run one attempt; every ending becomes an Outcome (the engine never sees user errors)."""
        try:
            value = await _bounded(self._execute(task, info), task, attempt_no, info)
        except asyncio.CancelledError:
            if log is not None:
                await asyncio.shield(log.end(info, None, cancelled=True))
            return Outcome(ok=False, reason="cancelled", info=info)
        except BaseException as exc:  # the task's own failure, whatever it is
            error = _as_timeout(exc, task, attempt_no)
            self.errors[task.name] = error
            if log is not None:
                await log.end(info, error)
            return Outcome(ok=False, reason=short_reason(error), info=info)
        self.values[task.name] = value
        self.errors.pop(task.name, None)
        if self.record is not None:  # for a run that resumes this one
            record = self.record
            why = await asyncio.to_thread(lambda: store_result(record.task_dir(task.name), value))
            if why:
                record.note(f"{task.name}: result not stored ({why}); a resumed run calls it again")
        if log is not None:
            await log.end(info, None)
        return Outcome(ok=True, info=info)

    async def _execute(self, task: ResolvedTask, info: dict[str, Any]) -> Any:
        runner = await self._runners.get(task)
        if not task.mapped:
            return await runner.call(task, self.values, info)
        state = self._map_state(task)
        info["items"] = len(state.items)
        missing = state.missing()
        if missing:
            rule = ItemRetry(task.retries, task.timeout, self._item_report(task.name))
            await runner.map(task, self.values, state.items, missing, state.out, info, rule)
        return list(state.out)

    def _item_report(self, task: str) -> ItemReport:
        """Each failed attempt of an item, and an item that succeeded on a retry, into the record."""
        record = self.record
        if record is None:
            return ItemRetry().report

        def report(index: int, attempt: int, error: BaseException | None, retried: bool) -> None:
            reason = short_reason(error) if error is not None else ""
            record.item_event(task, index, attempt, reason, retried)

        return report

    def _map_state(self, task: ResolvedTask) -> _MapState:
        state = self._maps.get(task.name)
        if state is None:
            source = task.spec.options.map if task.map_source is None else self.values[task.map_source]
            state = self._maps[task.name] = _MapState(_materialize(task, source))
        return state


async def _bounded(work: Any, task: ResolvedTask, attempt_no: int, info: dict[str, Any]) -> Any:
    """Await `work`, cancelling it (and its remote jobs) after the task's timeout.

    A map is bounded as a whole by its `map_timeout` (its `timeout` is each item's). A single
    call through a dispatch executor is bounded by the executor instead (the call's
    `timeout`), which counts from the call's start: time in a Slurm queue does not count.
    Time an attempt spends waiting for an earlier attempt's call to return (a sync function
    cannot be interrupted) counts: `info["waiting"]` says so while it waits.
    """
    if task.mapped:
        if task.map_timeout is None:
            return await work
        limit = task.map_timeout
        return await within(work, limit, lambda: TaskTimeout(task.name, limit, attempt_no, "map_timeout"))
    if task.timeout is None or not task.local:
        return await work
    timeout = task.timeout
    return await within(
        work,
        timeout,
        lambda: TaskTimeout(task.name, timeout, attempt_no, NEVER_CALLED if info.get("waiting") else ""),
    )


def _as_timeout(exc: BaseException, task: ResolvedTask, attempt_no: int) -> BaseException:
    """A dispatch timeout of this task's call is the task's timeout, named as such."""
    if isinstance(exc, DispatchTimeout) and task.timeout is not None and not task.mapped:
        error = TaskTimeout(task.name, task.timeout, attempt_no)
        error.__cause__ = exc
        return error
    return exc


def _materialize(task: ResolvedTask, source: Any) -> list[Any]:
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        where = f"the result of '{task.map_source}'" if task.map_source else "map="
        raise TypeError(
            f"task '{task.name}' maps over {where}, which must be an iterable (not str), "
            f"got {type(source).__name__}"
        )
    return list(source)


def first_failure(result: RunResult) -> str | None:
    """The task that failed first (by end time), if any."""
    failed = [(r.ended or 0.0, n) for n, r in result.units.items() if r.state is State.FAILED]
    return min(failed)[1] if failed else None
