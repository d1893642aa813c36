"""The Python front door: `with sflow.flow("name") as f:` and `@f.task`.

    with sflow.flow("etl", inputs={"n": 4}) as f:

        @f.task
        def numbers(n):                  # `n` is a flow input
            return list(range(n))

        @f.task(map="numbers", max_concurrent=8)
        async def square(x):             # once per item of `numbers`
            return x * x

        @f.task
        def total(square):               # `square` is the upstream task
            return sum(square)

    print(f.result.total)

Declaring is cheap and runs nothing; leaving the block checks the whole flow and runs it
(`async with` inside a running event loop). A failed task's original exception is raised
when the block ends; results and states stay readable on `f` afterwards.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from sflow.engine import RunResult, State
from sflow.errors import suggest
from sflow.flow.errors import (
    FlowDefinitionError,
    FlowError,
    FlowTimeout,
    ResultUnavailable,
    TaskFailed,
    add_note,
)
from sflow.flow.resolve import ResolvedTask, resolve
from sflow.flow.run import FlowRun, first_failure
from sflow.flow.task import MapSpec, ReadsSpec, RetriesSpec, TaskSpec, make_spec
from sflow.lifecycle.host import OwnLoop
from sflow.lifecycle.settings import RunSettings

F = TypeVar("F", bound=Callable[..., Any])


class FlowResult(Mapping[str, Any]):
    """Task results by name: `result.total`, `result["total"]`, `dict(result)`.

    Only tasks that succeeded have a result; asking for another task raises
    `ResultUnavailable` with its state, an unknown name `KeyError`/`AttributeError`.
    """

    def __init__(self, values: Mapping[str, Any], states: Mapping[str, State]) -> None:
        self._values = dict(values)
        self._states = dict(states)

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._states:
            raise ResultUnavailable(name, self._states[name].value)
        raise KeyError(f"no task named {name!r} (tasks: {', '.join(self._states) or 'none'})")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"FlowResult({', '.join(self._values)})"


class Flow:
    """A DAG of Python functions whose parameter names say what they need.

    Use `sflow.flow(...)` to make one. See the module docstring for the programming model
    and `docs/python.md` for the guide.
    """

    def __init__(
        self,
        name: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        environment: str | None = None,
        output_dir: str | Path | None = None,
        record: bool = True,
        keep_going: bool = False,
        timeout: float | None = None,
        grace: float = 10.0,
        resume: str | Path | None = None,
    ) -> None:
        _check_flow_options(name, inputs, timeout, grace)
        if resume is not None and not record:
            raise FlowDefinitionError(f"flow '{name}': resume needs the run record (record=True)")
        self.name = name
        self.inputs = dict(inputs or {})
        self.environment = environment
        self.resume = resume
        self.settings = RunSettings(
            output_dir=Path(output_dir) if output_dir else None,
            keep_going=keep_going,
            grace=grace,
            timeout=timeout,
            record=record,
        )
        self._specs: dict[str, TaskSpec] = {}
        self._run: FlowRun | None = None
        self._outcome: RunResult | None = None
        self._state = "open"  # open -> running -> done, or abandoned (the block raised)

    # -- declaring ---------------------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retries: RetriesSpec = None,
        timeout: float | None = None,
        environment: str | None = None,
        map: MapSpec = None,
        map_param: str | None = None,
        max_concurrent: int | None = None,
        resources: Mapping[str, Any] | None = None,
        map_timeout: float | None = None,
        reads: ReadsSpec = None,
    ) -> Callable[[F], F]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: Any
    ) -> Any:
        """Declare a task; returns the function unchanged (it stays callable and picklable).

        `retries`: extra attempts (int, or `{"count", "interval", "backoff"}`); `timeout`:
        seconds per attempt (`TaskTimeout`); for a map, both apply to each item, and
        `map_timeout` bounds the whole map. `environment`: a `sflow.config` environment name;
        `map`: an iterable, or the name of a task or input to iterate over; `map_param`: the
        parameter receiving each item (needed when that is ambiguous); `max_concurrent`: items
        of a map running at once; `resources`: executor resources (Slurm: partition, time, mem, gpus,
        ...); `reads`: files and folders the function reads, whose content becomes part of its
        fingerprint (`resume=`). Unset options take the environment's defaults. A mistake in an option is a
        `FlowDefinitionError` naming the task and the line of its `def`.
        """

        def declare(func: F) -> F:
            if self._state != "open":
                raise FlowDefinitionError(
                    f"flow '{self.name}' has already run; declare tasks inside its block"
                )
            spec = make_spec(func, name, options)
            if spec.name in self._specs:
                raise FlowDefinitionError(
                    f"flow '{self.name}': a task named '{spec.name}' already exists "
                    f"({self._specs[spec.name].where}); pass name=... to tell them apart"
                )
            self._specs[spec.name] = spec
            return func

        return declare(fn) if fn is not None else declare

    # -- running -----------------------------------------------------------------------------

    def __enter__(self) -> Flow:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._state = "abandoned"  # nothing ran yet: let the block's own error through
            return
        if self._state == "open":
            self.run()

    async def __aenter__(self) -> Flow:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._state = "abandoned"
            return
        if self._state == "open":
            await self.arun()

    def run(self) -> FlowResult:
        """Run the flow in a new event loop (what leaving a `with` block does)."""
        try:
            asyncio.get_running_loop()
            in_a_loop = True
        except RuntimeError:
            in_a_loop = False
        if in_a_loop:
            self._state = "abandoned"
            raise FlowError(
                f"flow '{self.name}' was left with `with` inside a running event loop; "
                "use `async with sflow.flow(...)` there (nothing was run)"
            )
        tasks = self._resolve()  # a mistake in the definition is raised here, not inside the loop
        return OwnLoop().run(lambda: self._run_resolved(tasks))

    async def arun(self) -> FlowResult:
        """Run the flow on the running loop (what leaving an `async with` block does)."""
        return await self._run_resolved(self._resolve())

    def _resolve(self) -> list[ResolvedTask]:
        """The flow's tasks with their dependencies resolved; FlowDefinitionError for a mistake."""
        if self._state != "open":
            raise FlowError(f"flow '{self.name}' can run only once (state: {self._state})")
        if "multiprocessing" in sys.modules:  # a guardless main script, imported by a pool process
            from sflow.dispatch.process import refuse_in_pool_start

            refuse_in_pool_start(f"flow '{self.name}'")
        try:
            return resolve(self.name, list(self._specs.values()), self.inputs, self.environment)
        except BaseException:
            self._state = "abandoned"
            raise

    async def _run_resolved(self, tasks: list[ResolvedTask]) -> FlowResult:
        self._state = "running"
        self._run = FlowRun(self.name, tasks, self.inputs, self.settings, resume=self.resume)
        try:
            self._outcome = await self._run.run()
        finally:
            self._state = "done"
        self._raise_failure(self._outcome)
        return self.result

    def _raise_failure(self, outcome: RunResult) -> None:
        failed = first_failure(outcome)
        if failed is None:
            if outcome.stop_reason and not outcome.interrupted:
                raise FlowTimeout(f"flow '{self.name}': {outcome.stop_reason}")
            return
        assert self._run is not None
        error = self._run.errors.get(failed)
        if error is None:
            unit = outcome.units[failed]
            error = TaskFailed(failed, unit.outcome.reason if unit.outcome else "failed")
        add_note(error, self._failure_note(failed, outcome))
        raise error

    def _failure_note(self, failed: str, outcome: RunResult) -> str:
        unit = outcome.units[failed]
        note = f"sflow: task '{failed}' of flow '{self.name}' failed after {unit.attempts} attempt(s)"
        stopped = [n for n, r in outcome.units.items() if r.state in (State.CANCELLED, State.SKIPPED)]
        if stopped:
            note += f"; not completed: {', '.join(stopped)}"
        if self.run_dir is not None:
            note += f"; run record: {self.run_dir}"
        return note

    # -- after the run -----------------------------------------------------------------------

    @property
    def result(self) -> FlowResult:
        """Results by task name (after the block; partial if the flow failed)."""
        if self._run is None:
            raise FlowError(f"flow '{self.name}' has not run: results exist once its block has ended")
        values = {n: self._run.values[n] for n in self._specs if n in self._run.values}
        return FlowResult(values, self.states)

    def __getitem__(self, name: str) -> Any:
        return self.result[name]

    @property
    def states(self) -> dict[str, State]:
        """Each task's state (`State.SUCCEEDED`, `FAILED`, `CANCELLED`, ...; a `str` enum)."""
        if self._run is None or self._run.engine is None:
            return dict.fromkeys(self._specs, State.PENDING)
        return {n: r.state for n, r in self._run.engine.results.items()}

    @property
    def errors(self) -> dict[str, BaseException]:
        """The exception of every task whose last attempt failed."""
        return dict(self._run.errors) if self._run is not None else {}

    @property
    def run_dir(self) -> Path | None:
        """The run record directory (None before the run or with `record=False`)."""
        record = self._run.record if self._run is not None else None
        return record.run_dir if record is not None else None

    @property
    def run_result(self) -> RunResult | None:
        """The engine's final word (timings, attempts, stop reason), once the run ended."""
        return self._outcome

    @property
    def tasks(self) -> list[str]:
        """Declared task names, in declaration order."""
        return list(self._specs)

    def __repr__(self) -> str:
        return f"<Flow {self.name!r} {self._state} tasks={len(self._specs)}>"


def flow(
    name: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    environment: str | None = None,
    output_dir: str | Path | None = None,
    record: bool = True,
    keep_going: bool = False,
    timeout: float | None = None,
    grace: float = 10.0,
    resume: str | Path | None = None,
    **unknown: Any,
) -> Flow:
    """A new flow; use it as `with sflow.flow(name) as f:` (or `async with`).

    `inputs` are values tasks receive by parameter name; `environment` is the default
    `sflow.dispatch` environment of its tasks (else the configured default, else in-process
    `local`); the run record goes to `output_dir/<run-id>/` (default `./sflow_output`) unless
    `record=False`. `keep_going` lets independent tasks finish after a failure (dependents
    are skipped); `timeout` bounds the whole flow; `grace` is how long stopping may take.
    `resume` (a run id, a run folder or `"latest"`) keeps the results of functions that run
    computed and that are unchanged (code, inputs, options, upstream): they are not called again.
    """
    for key in unknown:
        options = (
            "inputs",
            "environment",
            "output_dir",
            "record",
            "keep_going",
            "timeout",
            "grace",
            "resume",
        )
        raise FlowDefinitionError(
            f"flow {name!r}: unknown option {key!r}{suggest(key, options)} (options: {', '.join(options)})"
        )
    return Flow(
        name,
        inputs=inputs,
        environment=environment,
        output_dir=output_dir,
        record=record,
        keep_going=keep_going,
        timeout=timeout,
        grace=grace,
        resume=resume,
    )


def _check_flow_options(name: Any, inputs: Any, timeout: Any, grace: Any) -> None:
    """Fail on the `sflow.flow(...)` line, not when the block ends."""
    if not isinstance(name, str) or not name:
        raise FlowDefinitionError(f"a flow needs a non-empty name, got {name!r}")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise FlowDefinitionError(f"flow '{name}': inputs must be a mapping, got {type(inputs).__name__}")
    if timeout is not None and not (_seconds(timeout) and timeout > 0):
        raise FlowDefinitionError(
            f"flow '{name}': timeout must be a positive number of seconds, got {timeout!r}"
        )
    if not (_seconds(grace) and grace >= 0):
        raise FlowDefinitionError(f"flow '{name}': grace must be a number of seconds >= 0, got {grace!r}")


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
