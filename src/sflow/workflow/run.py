"""Run a validated YAML workflow: allocate backends, build engine units, record everything.

This is the glue between the spec, the plan, the backends, the launchers and the engine;
each of those knows nothing of the others.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.backends.base import Allocation, Backend, create_backend
from sflow.backends.placement import Placement, Placer
from sflow.engine import Attempt, Engine, Event, Outcome, RetryPolicy, RunResult, Unit
from sflow.engine.once import Once
from sflow.errors import BackendError, PlanError
from sflow.launchers.base import LaunchContext, get_launcher
from sflow.lifecycle.scope import NotStarted, RunScope
from sflow.lifecycle.settings import RunSettings
from sflow.record.outputs import read_outputs, write_outputs
from sflow.record.run_dir import RunRecord
from sflow.schema import parse_duration
from sflow.schema.base import as_json
from sflow.schema.expressions import render_value
from sflow.slurm.journal import SlurmJournal
from sflow.workflow.context import (
    add_backends,
    base_context,
    render_script,
    rendered_backend_config,
    shared_paths,
    task_env,
    task_scope,
)
from sflow.workflow.plan import TaskInstance, at_request
from sflow.workflow.run_plan import RunPlan, plan_run
from sflow.workflow.uploads import (
    UploadResult,
    planned_uploads,
    rendered_targets,
    run_uploads,
    upload_run_folder,
    uses_storage,
)

if TYPE_CHECKING:
    from sflow.probes import TaskProbes
    from sflow.schema import WorkflowSpec
    from sflow.schema.models import StorageTarget
    from sflow.schema.monitor import Monitor
    from sflow.workflow.monitors import Monitors, RunningMonitor
    from sflow.workflow.s3 import S3Client
    from sflow.workflow.uploads import PlannedUpload


class WorkflowRun:
    """One execution of a workflow spec, from allocation to summary.json."""

    def __init__(
        self,
        spec: WorkflowSpec,
        settings: RunSettings | None = None,
        listeners: Iterable[Callable[[Event], None]] = (),
        run_plan: RunPlan | None = None,
        max_concurrent: int | None = None,
    ):
        self.spec = spec
        self.max_concurrent = max_concurrent  # for every backend, over its own `max_concurrent`
        self.settings = settings or RunSettings()
        if not self.settings.record:
            raise ValueError("a YAML workflow always records: its tasks' scripts live in the run directory")
        self.workspace_dir = self.settings.workspace_path()
        self.output_dir = self.settings.output_path()
        self.run_plan = run_plan or plan_run(spec, self.output_dir)
        self.plan = self.run_plan.plan
        self.instances = self.plan.instances
        earlier = self.run_plan.earlier
        self.scope = RunScope(
            spec.workflow.name, self.settings, listeners, earlier.run_id if earlier is not None else None
        )
        assert self.scope.record is not None
        self.record: RunRecord = self.scope.record
        self.listeners = self.scope.listeners
        self.backends: dict[str, Backend] = {}
        self.allocations: dict[str, Allocation] = {}
        self.placers: dict[str, Placer] = {}
        self.context: dict[str, Any] = {}
        self.tables_pending: dict[str, int] = {}  # replicated task -> replicas yet to succeed
        for inst in self.instances:
            if inst.replica_index is not None and inst.task.outputs:
                self.tables_pending[inst.task.name] = self.tables_pending.get(inst.task.name, 0) + 1
        self.base_env = dict(os.environ)
        self.journal = SlurmJournal(self.record.run_dir)  # Slurm ids the run holds: `sflow cancel`
        self.allocation_lost: str | None = None  # why an allocation ended under the run
        self._watches: list[asyncio.Future[None]] = []
        self._results_lock = asyncio.Lock()
        self._monitors: Monitors | None = None
        self.targets: dict[str, StorageTarget] = {}  # storage targets, rendered
        self.uploads: list[UploadResult] = []
        self._s3: S3Client | None = None
        self._replicated = {i.task.name for i in self.instances if i.replica_index is not None}

    @property
    def engine(self) -> Engine | None:
        return self.scope.engine

    @property
    def monitors(self) -> Monitors:
        """The run's monitors, made with the first (a run without any loads none of their code)."""
        if self._monitors is None:
            from sflow.workflow.monitors import Monitors

            self._monitors = Monitors(
                self.record.run_dir, self.workspace_dir, self.base_env, self.settings.grace
            )
        return self._monitors

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Allocate, run every task, release; the record is complete whatever happens."""
        return await self.scope.run(
            self.plan.order,
            self._prepare,
            self._release,
            timeout=_duration(self.spec.workflow.timeout),
            summary=self._summary,
        )

    def _summary(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"backends": self._allocation_summary()}
        if self.uploads:
            extra["uploads"] = [u.as_dict() for u in self.uploads]
        return extra

    async def _prepare(self) -> list[Unit]:
        self.record.write_plan(self.run_plan.plan_record())
        for line in self.run_plan.resume_lines():
            self.record.note(line)
        self.context = base_context(self.spec, self.workspace_dir, self.record.run_dir)
        if uses_storage(self.spec):
            from sflow.workflow.s3 import s3_client  # the client of the `s3` extra, for a run that uploads

            self._s3 = await asyncio.to_thread(s3_client)  # boto3 missing: no task starts
            self.targets = rendered_targets(self.spec, self.context)
        try:
            await self._allocate()
        except BackendError as exc:  # Slurm said no: a failed run with its reason, not a traceback
            raise NotStarted(str(exc)) from None
        if self.allocation_lost:
            raise NotStarted(self.allocation_lost)
        add_backends(self.context, self.spec, self.allocations)
        if self.run_plan.kept():  # a thread only for files to link: a fresh run starts none
            await asyncio.to_thread(self._keep_earlier)
        monitor = self.spec.workflow.monitor
        if monitor is not None:
            from sflow.workflow.monitors import workflow_targets

            custom = _custom_script(monitor, self.context)
            await self.monitors.start(
                monitor, workflow_targets(monitor, self.allocations), custom_script=custom
            )
        return [self._unit(i) for i in self.instances]

    def request_stop(self, reason: str, interrupted: bool = False, force: bool = False) -> None:
        self.scope.request_stop(reason, interrupted=interrupted, force=force)

    async def _allocate(self) -> None:
        used = dict.fromkeys(i.backend for i in self.instances)
        for name in used:
            config = rendered_backend_config(self.spec, name, self.context)
            self.backends[name] = create_backend(config.type, name, config)
            self.backends[name].journal = self.journal
            self.backends[name].notice = self._notice
            self.backends[name].run_id = self.record.run_id
        for name, backend in self.backends.items():
            self.record.note(f"allocating backend '{name}'")
            try:
                self.allocations[name] = await backend.allocate()
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"backend '{name}': {exc}") from exc
            alloc = self.allocations[name]
            limit = self._max_concurrent(name)
            self.placers[name] = Placer(alloc.nodes, name, max_concurrent=limit)
            at_once = f"; at most {limit} task(s) at once" if limit else ""
            self.record.note(f"backend '{name}': nodes {', '.join(n.name for n in alloc.nodes)}{at_once}")
            self._watch(alloc)
        for inst in self.instances:
            try:
                self.placers[inst.backend].candidates(inst.request, inst.name)
            except PlanError as exc:
                raise at_request(exc, inst) from None

    def _notice(self, message: str) -> None:
        """Something the user should know while it happens (a long wait and its cause)."""
        self.record.note(message)
        print(f"sflow: {message}", file=sys.stderr)

    def _watch(self, alloc: Allocation) -> None:
        """An allocation that ends under the run stops it at once, with Slurm's reason."""
        if alloc.watch is not None:
            alloc.watch.on_end = self._allocation_ended
            self._watches.append(asyncio.ensure_future(alloc.watch.run()))

    def _allocation_ended(self, reason: str) -> None:
        if self.allocation_lost is not None:
            return
        self.allocation_lost = reason
        self.record.note(reason)
        self.scope.request_stop(reason)

    def _unwatch(self) -> None:
        """From here on the run releases its allocations itself: their end is no news."""
        for alloc in self.allocations.values():
            if alloc.watch is not None:
                alloc.watch.on_end = None
        for watch in self._watches:
            watch.cancel()

    def _max_concurrent(self, name: str) -> int | None:
        """The command line's limit, else the backend's field, else its type's default."""
        backend = self.backends[name]
        field_value = getattr(backend.config, "max_concurrent", None)
        chosen = self.max_concurrent or field_value or backend.default_max_concurrent()
        return int(chosen) if chosen else None

    async def _release(self) -> None:
        self._unwatch()
        try:
            if self._monitors is not None:
                await self._monitors.stop_all()
            await self._upload_all()
            for name, backend in reversed(list(self.backends.items())):
                if name not in self.allocations:
                    continue
                try:
                    await backend.release()
                except Exception as exc:  # keep releasing the others; the failure is in the log
                    self.record.note(f"backend '{name}': release failed: {exc}")
                    print(f"sflow: backend '{name}': release failed: {exc}", file=sys.stderr)
        finally:
            self.journal.close()

    def _allocation_summary(self) -> dict[str, Any]:
        return {
            name: {"nodes": [n.name for n in a.nodes], "job_id": a.job_id, "reused": a.reused}
            for name, a in self.allocations.items()
        }

    def _keep_earlier(self) -> None:
        """Tasks kept from the resumed run: linked into this run, with their outputs in its tables."""
        earlier = self.run_plan.earlier
        by_name = self.plan.by_name()
        for name in self.run_plan.kept():
            assert earlier is not None
            task = earlier.tasks[name]
            assert task.origin_dir is not None
            self.record.keep(name, task.origin_dir, task.origin_run, task.entry)
            inst = by_name[name]
            base = inst.task.name
            if inst.replica_index is None or base not in self.tables_pending:
                continue
            values = task.entry.get("outputs")
            if values is None:
                values = read_outputs(task.origin_dir)
            self.record.set_outputs(name, values, base, inst.replica_index, inst.sweep)
            self.tables_pending[base] -= 1
            if self.tables_pending[base] == 0:
                self.record.write_sweep_table(base)

    # -- context and units -----------------------------------------------------------------------

    def _unit(self, inst: TaskInstance) -> Unit:
        task = inst.task
        retries = task.retries
        policy = RetryPolicy()
        if retries is not None:
            policy = RetryPolicy(
                count=int(retries.count or 0),
                interval=_duration(retries.interval) or 0.0,
                backoff=float(retries.backoff or 1.0),
            )

        async def start(attempt_no: int) -> Attempt:
            return await self._start_attempt(inst, attempt_no)

        decision = self.run_plan.decisions.get(inst.name)
        return Unit(
            name=inst.name,
            start=start,
            deps=inst.deps,
            retries=policy,
            timeout=_duration(task.timeout),
            kept=f"kept: {decision.reason}" if decision is not None and decision.keep else "",
        )

    async def _start_attempt(self, inst: TaskInstance, attempt_no: int) -> Attempt:
        placer = self.placers[inst.backend]
        placement = await placer.place(inst.request, inst.name)
        try:
            hosts = [n.ip_address for n in placement.nodes]
            scope = task_scope(self.context, inst, placement)
            probes = _task_probes(inst, scope, hosts)
            outputs = [_rendered(output, scope) for output in inst.task.outputs]
            task_dir = self.record.task_dir(inst.name)
            uploads = planned_uploads(inst, scope, task_dir, inst.task.name in self._replicated)
            ctx = self._launch_context(inst, placement, attempt_no, scope)
            attempt = await get_launcher(ctx.operator.type).start(ctx)
        except BaseException:
            placer.release(placement, inst.name)
            raise
        if probes:
            from sflow.probes import ProbedAttempt

            attempt = ProbedAttempt(
                attempt, probes.readiness, probes.failure, hosts, self.settings.grace, self.record.log_path
            )
        monitor = await self._start_monitor(inst, placement, ctx.env, scope)
        result = _rendered(inst.task.result, scope)
        # as the file says; a service without it holds what it has while it runs, and frees it at its end
        release_after = inst.task.resources.release_after() if inst.task.resources is not None else None
        released = False

        def on_ready() -> None:
            nonlocal released
            if release_after == "task_ready":  # its nodes and GPUs go to others while it runs on
                released = True
                placer.release(placement, inst.name)
            else:
                placer.park(inst.name)

        async def on_end(outcome: Outcome, stopped_when_ready: bool) -> Outcome:
            if monitor is not None:
                await self.monitors.stop(monitor)
            if release_after == "workflow_completion" and outcome.ok:
                placer.park(inst.name)  # held until the run ends
            elif not released:
                placer.release(placement, inst.name)
            # a service stopped once it was ready (the end of its work) has its outputs too
            if (outcome.ok or stopped_when_ready) and outputs:
                await self._collect_outputs(inst, attempt, outputs)
            if outcome.ok and result is not None:
                await self._write_result(inst, attempt, result)
            if outcome.ok and uploads:
                return await self._upload(uploads, outcome)
            return outcome

        return HeldAttempt(attempt, on_end, on_ready=on_ready)

    async def _write_result(self, inst: TaskInstance, attempt: Attempt, result: dict[str, Any]) -> None:
        """`<task>/result.json` and the run's `results.json`, before the task counts as done."""
        from sflow.workflow.results import task_result, write_results

        task_dir = self.record.task_dir(inst.name)
        log = attempt.log_path or task_dir / f"{inst.name}.log"
        data = await asyncio.to_thread(task_result, inst.name, result, log, task_dir)
        for error in data["errors"]:
            self.record.note(f"{inst.name}: result: {error}")
        async with self._results_lock:  # one writer of results.json at a time: no update is lost
            run_dir, run_id = self.record.run_dir, self.record.run_id
            await asyncio.to_thread(write_results, run_dir, run_id, inst.name, task_dir, data)

    async def _start_monitor(
        self, inst: TaskInstance, placement: Placement, env: dict[str, str], scope: dict[str, Any]
    ) -> RunningMonitor | None:
        """The task's monitor, from the start of this attempt to its end."""
        monitor = inst.task.monitor
        if monitor is None:
            return None
        from sflow.workflow.monitors import Placed, task_targets

        gpus = [list(g) for g in placement.gpus]
        own = Placed(inst.task.name, inst.backend, placement.node_names, gpus)
        placed = [
            Placed(
                i.task.name,
                i.backend,
                self.record.task_info[i.name]["nodes"],
                self.record.task_info[i.name]["gpus"],
            )
            for i in self.instances
            if i.name in self.record.task_info and "nodes" in self.record.task_info[i.name]
        ]
        targets = task_targets(monitor, own, self.allocations, placed)
        custom = _custom_script(monitor, scope)
        try:
            return await self.monitors.start(monitor, targets, task=inst.name, env=env, custom_script=custom)
        except OSError as exc:  # the task runs on unmonitored; the log says why
            self._notice(f"{inst.name}: cannot start its monitor: {exc}")
            return None

    async def _collect_outputs(self, inst: TaskInstance, attempt: Attempt, outputs: list[Any]) -> None:
        """Values parsed from the log into `<task>/outputs.json` and the run summary."""
        from sflow.workflow.outputs import extract_outputs, is_template  # loaded by a task with outputs

        task_dir = self.record.task_dir(inst.name)
        values, warnings = await asyncio.to_thread(extract_outputs, attempt.log_path, outputs, task_dir)
        for warning in warnings:
            self.record.note(f"{inst.name}: {warning}")
        specs = [{"pattern": o["pattern"], "source": o["source"]} for o in outputs if is_template(o)]
        write_outputs(task_dir, values, (inst.name, specs) if specs else None)
        replica_of = inst.task.name if inst.replica_index is not None else None
        self.record.set_outputs(inst.name, values, replica_of, inst.replica_index, inst.sweep)
        if replica_of is not None:
            self.tables_pending[replica_of] -= 1
            if self.tables_pending[replica_of] == 0:  # before any dependent starts: it may read it
                await asyncio.to_thread(self.record.write_sweep_table, replica_of)

    async def _upload(self, planned: list[PlannedUpload], outcome: Outcome) -> Outcome:
        """A completed task's uploads; one that fails with `on_error: fail` fails the task
        (and is not retried: another attempt of the task would not change it)."""
        assert self._s3 is not None
        results = await asyncio.to_thread(run_uploads, planned, self.targets, self._s3.put)
        failed = self._report_uploads(results)
        if not failed:
            return outcome
        return outcome.failed(f"upload failed: {failed[0].destination}: {failed[0].error}", retryable=False)

    async def _upload_all(self) -> None:
        """`workflow.upload_all` once every task has ended; `on_error: fail` fails the run."""
        spec = self.spec.workflow.upload_all
        if spec is None or self._s3 is None:
            return
        scope = {**self.context, "workflow": {**self.context["workflow"], "run_id": self.record.run_id}}
        to = render_value(spec.to, scope, where=spec.loc("to"), field=spec.path("to")) if spec.to else None
        result = await asyncio.to_thread(
            upload_run_folder, self.record.run_dir, self.record.run_id, spec, to, self.targets, self._s3.put
        )
        if self._report_uploads([result]) and self.scope.result is not None:
            self.scope.result.stop_reason = f"upload_all failed: {result.destination}: {result.error}"

    def _report_uploads(self, results: list[UploadResult]) -> list[UploadResult]:
        """Each result in sflow.log, each failure on the terminal too; the failures that count."""
        self.uploads.extend(results)
        for result in results:
            if result.ok:
                self.record.note(result.line())
            else:
                self._notice(f"{result.line()} (on_error: {result.on_error})")
        return [r for r in results if not r.ok and r.on_error == "fail"]

    def _launch_context(
        self, inst: TaskInstance, placement: Placement, attempt_no: int, scope: dict[str, Any]
    ) -> LaunchContext:
        task_dir = self.record.task_dir(inst.name)
        script = render_script(inst, scope)
        script_path = task_dir / f"{task_dir.name}.sh"
        script_path.write_text(script, encoding="utf-8")
        env = task_env(
            self.spec,
            inst,
            scope,
            placement,
            self.workspace_dir,
            self.output_dir,
            self.record.run_dir,
            task_dir,
            self.allocations.get(inst.backend),
        )
        env["SFLOW_ATTEMPT"] = str(attempt_no)
        if "PYTHONUNBUFFERED" not in env and "PYTHONUNBUFFERED" not in self.base_env:
            # A log is a file, so Python would hold a service's "listening" in its buffer: log_watch
            # probes and `sflow logs -f` would see nothing until the process exits.
            env["PYTHONUNBUFFERED"] = "1"
        info = self.record.task_info.setdefault(inst.name, {})
        info.update(backend=inst.backend, nodes=placement.node_names, gpus=[list(g) for g in placement.gpus])
        if inst.replica_index is not None:
            info.update(replica_index=inst.replica_index, sweep=inst.sweep)
        return LaunchContext(
            task=inst.name,
            script_path=script_path,
            env=env,
            cwd=self.workspace_dir,
            log_path=self.record.attempt_log(inst.name, attempt_no),
            placement=placement,
            allocation=self.allocations[inst.backend],
            operator=inst.operator,
            attempt=attempt_no,
            base_env=self.base_env,
            run_id=self.record.run_id,
            shared_paths=self._shared_paths(inst, task_dir),
        )

    def _shared_paths(self, inst: TaskInstance, task_dir: Path) -> tuple[str, ...]:
        uses = getattr(inst.operator, "uses_container", None)
        if not (uses and uses()):
            return ()
        return shared_paths(
            self.context["artifacts"], self.workspace_dir, self.output_dir, self.record.run_dir, task_dir
        )


class HeldAttempt(Attempt):
    """An attempt that runs `on_end` (release its placement, collect outputs) once it ends.

    `on_end` also learns whether the attempt was stopped on request after it had become ready,
    and gives the attempt's final outcome (a completed task whose upload failed has failed);
    `on_ready` runs when a service becomes ready (from then on it keeps its placement).
    """

    def __init__(
        self,
        inner: Attempt,
        on_end: Callable[[Outcome, bool], Awaitable[Outcome]],
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.inner = inner
        self._on_ready = on_ready
        self.log_path = inner.log_path
        self.info = inner.info
        self._on_end = on_end
        self._ended = Once(self._wait_once)
        self._was_ready = False
        self._stop_requested = False

    async def wait(self) -> Outcome:
        return await self._ended()

    async def _wait_once(self) -> Outcome:
        outcome = await self.inner.wait()
        return await self._on_end(outcome, self._stop_requested and self._was_ready)

    async def stop(self, grace: float) -> None:
        self._stop_requested = True
        await self.inner.stop(grace)
        await self.wait()

    async def ready(self) -> Outcome:
        verdict = await self.inner.ready()
        self._was_ready = verdict.ok
        if verdict.ok:
            self._on_ready()
        return verdict

    @property
    def has_readiness(self) -> bool:
        return self.inner.has_readiness


def _task_probes(inst: TaskInstance, scope: dict[str, Any], hosts: list[str]) -> TaskProbes | None:
    """The instance's probes, rendered; None for a task without any (`sflow.probes` stays unloaded)."""
    if inst.task.probes is None:
        return None
    from sflow.probes import task_probes

    rendered = _rendered(inst.task.probes, scope)
    return task_probes({"probes": rendered}, default_host=hosts[0] if hosts else "127.0.0.1")


def _rendered(model: Any, scope: dict[str, Any]) -> Any:
    """A probe or output model as plain data with its `${{ }}` fields rendered for one instance."""
    if model is None:
        return None
    data = as_json(model, drop_none=True)
    return render_value(data, scope, where=model.loc(), field=model.path())


def _custom_script(monitor: Monitor, scope: dict[str, Any]) -> str | None:
    """A monitor's `scopes.custom.script`, its `${{ }}` rendered like a task's script."""
    lines = monitor.custom_script()
    if not lines:
        return None
    assert monitor.scopes is not None and monitor.scopes.custom is not None
    custom = monitor.scopes.custom
    rendered = render_value(lines, scope, where=custom.loc("script"), field=custom.path("script"))
    return "\n".join(str(line) for line in rendered) + "\n"


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    return parse_duration(value)
