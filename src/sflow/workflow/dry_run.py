"""`sflow run --dry-run`: the plan as it would run, with every expression resolved.

Placement here is a simulation in dependency order (a task that does not fit reuses
what earlier tasks held); at run time placement follows the real order of events.
Rendering every script also proves the expressions before anything is started.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from shlex import quote as _quote
from typing import TYPE_CHECKING, Any

from sflow.backends.base import Allocation, create_backend
from sflow.backends.placement import ANY_ONE_NODE, EVERY_NODE, Placement, Placer, holds_gpus
from sflow.errors import PlanError, SpecError
from sflow.launchers.base import RUN_ID_PLACEHOLDER, LaunchContext, Launcher, get_launcher
from sflow.schema.expressions import render_value
from sflow.schema.loader import gc_paused
from sflow.schema.problems import Problems
from sflow.workflow.context import (
    ScriptRenderer,
    add_backends,
    base_context,
    rendered_backend_config,
    shared_paths,
    task_env,
    task_scope,
)
from sflow.workflow.plan import TaskInstance, at_request, expand
from sflow.workflow.uploads import (
    credentials_hint,
    destination,
    join_prefix,
    planned_destination,
    planned_uploads,
    rendered_targets,
    uses_storage,
)

if TYPE_CHECKING:
    from sflow.workflow.run_plan import RunPlan


def planned_allocations(
    spec: Any, instances: list[TaskInstance], context: dict[str, Any]
) -> dict[str, Allocation]:
    """The nodes each used backend would offer, as far as is known without asking anyone."""
    out = {}
    for name in dict.fromkeys(i.backend for i in instances):
        config = rendered_backend_config(spec, name, context)
        backend = create_backend(config.type, name, config)
        out[name] = backend.planned_allocation()
    return out


def simulate_placement(
    ordered: list[TaskInstance], allocations: dict[str, Allocation]
) -> dict[str, Placement]:
    """A plausible placement for every instance, in start order; PlanError if one can never fit.

    A task starts after its dependencies (and theirs) have ended, so what they held is free for
    it; what tasks that may still run beside it hold is not, nor what a service or a task with
    `release_after: workflow_completion` holds (until the workflow ends). Only a task that still
    does not fit pretends that every earlier task has ended (at run time it waits for them, or
    fails naming the services that keep what it needs).

    Nodes are shared, so a task that takes no GPUs is placed the same whatever else holds, and
    changes nothing for the others: its request is placed once, and only tasks holding GPUs are
    held, unless a backend places some request by load (`ANY_ONE_NODE`).
    """
    placers = {name: Placer(a.nodes, name) for name, a in allocations.items()}
    by_load = {i.backend for i in ordered if i.request is not EVERY_NODE and i.request == ANY_ONE_NODE}
    held: dict[str, dict[str, Placement]] = {name: {} for name in allocations}
    to_the_end: dict[str, dict[str, Placement]] = {name: {} for name in allocations}
    walk = _Ancestors(ordered, held, placers)
    fixed: dict[str, dict[int, Placement]] = {name: {} for name in allocations}  # by id() of a request
    out: dict[str, Placement] = {}
    holding = False  # whether any task has been held yet (most plans hold none)
    for inst in ordered:
        if holding and inst.deps and any(held.values()):  # else nothing to give back (yet)
            walk.release(inst.deps)
        request = inst.request
        placement = fixed[inst.backend].get(id(request))
        if placement is not None:
            out[inst.name] = placement
            continue
        placer = placers[inst.backend]
        placement = _place(placer, inst)
        if inst.backend not in by_load and not holds_gpus(request):
            assert placement is not None  # a request for no GPUs fits whatever else holds
            out[inst.name] = fixed[inst.backend][id(request)] = placement
            continue
        if placement is None:  # pretend earlier tasks have finished
            for holders in (held[inst.backend], to_the_end[inst.backend]):
                for holder, p in holders.items():
                    placer.release(p, holder)
                holders.clear()
            placement = placer.try_place(request, inst.name)
            assert placement is not None
        (to_the_end if _held_to_the_end(inst) else held)[inst.backend][inst.name] = placement
        holding = True
        out[inst.name] = placement
    return out


def _place(placer: Placer, inst: TaskInstance) -> Placement | None:
    try:
        return placer.try_place(inst.request, inst.name)
    except PlanError as exc:
        raise at_request(exc, inst) from None


class _Ancestors:
    """Gives back what the ancestors of a task still hold when it starts. Each task is walked once
    in the whole simulation: a task walked before had all its ancestors walked with it."""

    def __init__(
        self, ordered: list[TaskInstance], held: dict[str, dict[str, Placement]], placers: dict[str, Placer]
    ) -> None:
        self.ordered = ordered
        self.of: dict[str, TaskInstance] = {}  # by name, made by the first walk
        self.held = held
        self.placers = placers
        self.walked: set[str] = set()

    def release(self, start: tuple[str, ...]) -> None:
        if not self.of:
            self.of = {inst.name: inst for inst in self.ordered}
        stack, walked, of = list(start), self.walked, self.of
        while stack:
            name = stack.pop()
            if name in walked:
                continue
            walked.add(name)
            inst = of[name]
            placement = self.held[inst.backend].pop(name, None)
            if placement is not None:
                self.placers[inst.backend].release(placement, name)
            stack.extend(inst.deps)


def _monitor_line(inst: TaskInstance) -> str:
    monitor = inst.task.monitor
    if monitor is None:
        return ""
    used_by = monitor.resources.used_by_tasks if monitor.resources is not None else None
    whose = f"the nodes of {', '.join(used_by)}" if used_by else "its nodes"
    from sflow.workflow.monitors import describe_monitor  # loaded for a workflow that has monitors

    return f"{describe_monitor(monitor)}, {whose}, while it runs"


def _held_to_the_end(inst: TaskInstance) -> bool:
    return inst.task.release_after() == "workflow_completion"


def describe_plan(spec: Any, workspace: Path, output_dir: Path, run_plan: RunPlan | None = None) -> str:
    """The plan as text: backends and their nodes, then every task in start order.

    With a `run_plan`, only its tasks (`--task`), each with its resume decision.
    """
    return "".join(describe_plan_pieces(spec, workspace, output_dir, run_plan))


def describe_plan_pieces(
    spec: Any, workspace: Path, output_dir: Path, run_plan: RunPlan | None = None
) -> list[str]:
    """`describe_plan`'s text in pieces of a few thousand task entries each, to be written one
    after the other: the plan of a big workflow is never one string (for 100,000 tasks, that string
    and its copies on the way out cost more in fresh memory than writing them takes)."""
    with gc_paused() as resume:  # planning, like loading, makes many objects and no cycles...
        return _describe_plan(spec, workspace, output_dir, resume, run_plan)


def _describe_plan(
    spec: Any, workspace: Path, output_dir: Path, resume_gc: Callable[[], None], run_plan: RunPlan | None
) -> list[str]:
    ordered = (run_plan.plan if run_plan is not None else expand(spec)).in_order()
    decisions = run_plan.decisions if run_plan is not None else {}
    run_dir = output_dir / RUN_ID_PLACEHOLDER
    context = base_context(spec, workspace, run_dir, write_artifacts=False)
    allocations = planned_allocations(spec, ordered, context)
    add_backends(context, spec, allocations)
    placements = simulate_placement(ordered, allocations)
    renderer = ScriptRenderer(context)
    commands = _Commands(allocations, workspace, str(run_dir), context)
    out = _Pieces()
    out.write(f"workflow: {spec.workflow.name}  ({len(ordered)} task(s))")
    for name, alloc in allocations.items():
        nodes = ", ".join(f"{n.name}({n.num_gpus} gpu)" if n.num_gpus else n.name for n in alloc.nodes)
        out.write(f"\nbackend {name} [{spec.backend_type(name)}]: {nodes}")
        if "request" in alloc.info:  # what the allocation will ask Slurm for
            out.write(f"\n  allocation: {alloc.info['request']}")
    if spec.workflow.monitor is not None:
        from sflow.workflow.monitors import describe_monitor

        out.write(f"\nmonitor: {describe_monitor(spec.workflow.monitor)}, every node, for the whole run")
    if run_plan is not None and run_plan.earlier is not None:
        out.write(f"\n{run_plan.resume_summary()}")
    uploads = _Uploads(spec, context, run_dir)
    if uploads.hint:
        out.write(f"\n{uploads.hint}")
    if spec.workflow.upload_all is not None:
        out.write(f"\nupload_all: {uploads.upload_all()}")
    write = out.write
    entries = _Entries()
    problems = Problems()  # every script's mistakes, not only the first one's
    for step, inst in enumerate(ordered, 1):
        placement = placements[inst.name]
        try:
            body = renderer.render_body(inst, placement)
        except SpecError as exc:
            problems.add(exc)
            continue
        if renderer.left_cycles:  # ...but a `${% %}` template leaves cycles behind
            resume_gc()
        argv = commands.argv(inst, placement)
        note = ""
        if decisions:
            decision = decisions[inst.name]
            note = f"{'keep' if decision.keep else 'run'} ({decision.reason})"
        monitor = _monitor_line(inst) if inst.task.monitor is not None else ""
        write(entries.text(step, inst, placement, argv, body, note, monitor))
        if inst.task.uploads:
            write("".join(f"\n   upload: {line}" for line in uploads.lines(inst, placement)))
    del ordered, placements, renderer, context
    problems.raise_if_any()
    return out.pieces()


def plan_data(
    spec: Any, workspace: Path, output_dir: Path, run_plan: RunPlan | None = None
) -> dict[str, Any]:
    """The plan as data (`sflow run --dry-run --json`): what `describe_plan` shows, plus each task's
    environment, for programs that compare or check plans."""
    with gc_paused():
        ordered = (run_plan.plan if run_plan is not None else expand(spec)).in_order()
        run_dir = output_dir / RUN_ID_PLACEHOLDER
        context = base_context(spec, workspace, run_dir, write_artifacts=False)
        allocations = planned_allocations(spec, ordered, context)
        add_backends(context, spec, allocations)
        placements = simulate_placement(ordered, allocations)
        renderer = ScriptRenderer(context)
        uploads = _Uploads(spec, context, run_dir)
        tasks = []
        for inst in ordered:
            placement = placements[inst.name]
            body = renderer.render_body(inst, placement)
            task_dir = run_dir / inst.name
            env = task_env(
                spec,
                inst,
                task_scope(context, inst, placement),
                placement,
                workspace,
                output_dir,
                run_dir,
                task_dir,
                allocations[inst.backend],
            )
            ctx = LaunchContext(
                task=inst.name,
                script_path=task_dir / f"{inst.name}.sh",
                env=env,
                cwd=workspace,
                log_path=task_dir / f"{inst.name}.log",
                placement=placement,
                allocation=allocations[inst.backend],
                operator=inst.operator,
                base_env={},
                run_id=RUN_ID_PLACEHOLDER,
                shared_paths=_shared(inst, context, workspace, output_dir, run_dir, task_dir),
            )
            data = _task_data(inst, placement, get_launcher(inst.operator.type).argv(ctx), env, body)
            if inst.task.uploads:
                data["uploads"] = uploads.data(inst, placement)
            if run_plan is not None and inst.name in run_plan.decisions:
                decision = run_plan.decisions[inst.name]
                data["resume"] = {"keep": decision.keep, "reason": decision.reason}
            tasks.append(data)
    return {
        "workflow": spec.workflow.name,
        "backends": {name: _allocation_data(spec, name, a) for name, a in allocations.items()},
        "tasks": tasks,
    }


class _Pieces:
    """Text written a little at a time, joined into a piece every `_WRITES` writes."""

    _WRITES = 4096

    def __init__(self) -> None:
        self._done: list[str] = []
        self._parts: list[str] = []

    def write(self, text: str) -> None:
        parts = self._parts
        parts.append(text)
        if len(parts) >= self._WRITES:
            self._done.append("".join(parts))
            parts.clear()

    def pieces(self) -> list[str]:
        """Everything written, in pieces (at least one, none of the others empty)."""
        if self._parts or not self._done:
            self._done.append("".join(self._parts))
            self._parts.clear()
        return self._done


class _Uploads:
    """Each task's planned uploads, rendered as a real run would when the task completes."""

    def __init__(self, spec: Any, context: dict[str, Any], run_dir: Path) -> None:
        self.spec = spec
        self.uses = uses_storage(spec)
        self.targets = rendered_targets(spec, context) if self.uses else {}
        self.context = context
        self.run_dir = run_dir
        self.replicated = {t.name for t in spec.workflow.tasks if t.replicas is not None}
        self.hint = credentials_hint(os.environ, Path.home()) if self.uses else None

    def data(self, inst: TaskInstance, placement: Placement) -> list[dict[str, Any]]:
        scope = task_scope(self.context, inst, placement)
        planned = planned_uploads(inst, scope, self.run_dir / inst.name, inst.task.name in self.replicated)
        return [
            {
                "target": p.target,
                "from": p.pattern,
                "to": planned_destination(p, self.targets[p.target]),
                "on_error": p.on_error,
            }
            for p in planned
        ]

    def upload_all(self) -> str:
        """Where the zipped run folder goes (`workflow.run_id` is `<run-id>` in a dry run)."""
        spec = self.spec.workflow.upload_all
        scope = {**self.context, "workflow": {**self.context["workflow"], "run_id": self.run_dir.name}}
        to = render_value(spec.to, scope, where=spec.loc("to"), field=spec.path("to")) if spec.to else None
        target = self.targets[spec.target]
        key = join_prefix(target.prefix, to or f"{self.run_dir.name}.zip")
        return f"{self.run_dir} zipped -> {destination(target, key)} (on_error: {spec.on_error})"

    def lines(self, inst: TaskInstance, placement: Placement) -> list[str]:
        return [f"{d['from']} -> {d['to']} (on_error: {d['on_error']})" for d in self.data(inst, placement)]


def _allocation_data(spec: Any, name: str, alloc: Allocation) -> dict[str, Any]:
    request = alloc.info.get("argv")
    return {
        "type": spec.backend_type(name),
        "nodes": [n.as_dict() for n in alloc.nodes],
        "job_id": alloc.job_id,
        "request": list(request) if request else None,
    }


def _task_data(
    inst: TaskInstance, placement: Placement, argv: list[str], env: dict[str, str], body: str
) -> dict[str, Any]:
    return {
        "name": inst.name,
        "task": inst.task.name,
        "backend": inst.backend,
        "operator": inst.operator.name,
        "operator_type": inst.operator.type,
        "after": list(inst.deps),
        "nodes": placement.node_names,
        "gpus": [list(g) for g in placement.gpus],
        "command": argv,
        "env": env,
        "script": body,
    }


def _runs_container(inst: TaskInstance) -> bool:
    uses = getattr(inst.operator, "uses_container", None)
    return bool(uses and uses())


def _shared(
    inst: TaskInstance,
    context: dict[str, Any],
    workspace: Path,
    output_dir: Path,
    run_dir: Path,
    task_dir: Path,
) -> tuple[str, ...]:
    """`shared_paths` of a task whose operator runs a container (no others need them)."""
    if not _runs_container(inst):
        return ()
    return shared_paths(context["artifacts"], workspace, output_dir, run_dir, task_dir)


class _Commands:
    """The argv each launcher would run (the environment is not shown, so none is built)."""

    def __init__(
        self, allocations: dict[str, Allocation], workspace: Path, run_dir: str, context: dict[str, Any]
    ) -> None:
        self.allocations = allocations
        self.workspace = workspace
        self.run_dir = run_dir
        self.context = context
        self._last: _PlannedLaunch | None = None
        self._launcher: Launcher | None = None  # the launcher of the last context's operator

    def argv(self, inst: TaskInstance, placement: Placement) -> list[str]:
        script = f"{self.run_dir}/{inst.name}/{inst.name}.sh"
        allocation = self.allocations[inst.backend]
        ctx = self._last
        if (
            ctx is not None
            and ctx.operator is inst.operator
            and not ctx.shared_paths  # so the operator runs no container: this task has none either
            and ctx.placement is placement
            and ctx.allocation is allocation
        ):  # the previous task's context serves this one (launchers keep nothing of it)
            ctx.task = inst.name
            ctx._script = script
            return self._launcher.argv(ctx)  # type: ignore[union-attr]  # set with the context
        shared = self._shared(inst) if _runs_container(inst) else ()
        ctx = self._last = _PlannedLaunch(
            script,
            task=inst.name,
            env={},
            cwd=self.workspace,
            placement=placement,
            allocation=allocation,
            operator=inst.operator,
            base_env={},
            run_id=RUN_ID_PLACEHOLDER,
            shared_paths=shared,
        )
        self._launcher = get_launcher(inst.operator.type)
        return self._launcher.argv(ctx)

    def _shared(self, inst: TaskInstance) -> tuple[str, ...]:
        """Container mounts, with `Path`s made only for a task that runs a container."""
        run_dir = Path(self.run_dir)
        return _shared(inst, self.context, self.workspace, run_dir.parent, run_dir, run_dir / inst.name)


class _PlannedLaunch(LaunchContext):
    """A launch context whose paths are made only if a launcher reads them: the built-in launchers'
    command lines need only `script_text()`, and a `Path` costs more than the rest of a command line.

    `script` must read as its `Path` would: `run_dir/<task>/<task>.sh` does (a task name has no `/`
    and does not start with a dot).
    """

    def __init__(self, script: str | None = None, **fields: Any) -> None:
        path = fields.pop("script_path", None)  # given instead by dataclasses.replace()
        self._script = script if script is not None else str(path)
        fields.pop("log_path", None)
        super().__init__(script_path=None, log_path=None, **fields)  # type: ignore[arg-type]

    def script_text(self) -> str:
        return self._script

    @property
    def script_path(self) -> Path:
        return Path(self._script)

    @script_path.setter
    def script_path(self, value: Path | None) -> None:
        pass

    @property
    def log_path(self) -> Path:
        return self.script_path.with_suffix(".log")

    @log_path.setter
    def log_path(self, value: Path | None) -> None:
        pass


class _Entries:
    """Each task's entry in the plan text. What consecutive tasks share, the line of their backend,
    operator and nodes, is made once, and so are the quoted words their command lines share: all
    but the last word (the script's path, for the built-in launchers) are most often the words of
    the command line before."""

    _KEPT_WORDS = 1000  # a command line's fixed words; its script path differs from task to task

    def __init__(self) -> None:
        self._shared: tuple[Placement, Any, str, str] | None = None  # placement, operator, backend: line
        self._quoted: dict[str, str] = {}
        self._head: list[str] = []  # the words of the last command line but its last one...
        self._head_text = ""  # ...quoted, each followed by a space

    def text(
        self,
        step: int,
        inst: TaskInstance,
        placement: Placement,
        argv: list[str],
        body: str,
        resume: str = "",
        monitor: str = "",
    ) -> str:
        """One task's entry, after a newline; `body` is its rendered script without the `#!` line."""
        shared = self._shared
        if shared is None or not (
            shared[0] is placement and shared[1] is inst.operator and shared[2] == inst.backend
        ):
            shared = self._shared = (placement, inst.operator, inst.backend, _where_line(inst, placement))
        notes = f"\n   after: {', '.join(inst.deps)}" if inst.deps else ""
        if resume:
            notes += f"\n   resume: {resume}"
        if inst.sweep:
            notes += "\n   sweep: " + ", ".join(f"{k}={v}" for k, v in inst.sweep.items())
        if monitor:
            notes += f"\n   monitor: {monitor}"
        # the script's lines after the `#!` line; printable text holds no line break
        lines = body if body.isprintable() else "\n   | ".join((body + "\n").splitlines())
        return f"\n\n{step}. {inst.name}{shared[3]}{notes}\n   command: {self._command(argv)}\n   | {lines}"

    def _command(self, argv: list[str]) -> str:
        """The command line as a shell reads it: each word quoted, spaces between."""
        if not argv:
            return ""
        head = argv[:-1]
        if head != self._head:
            self._head = head
            self._head_text = "".join([self._quote(word) + " " for word in head])
        last = argv[-1]
        if RUN_ID_PLACEHOLDER in last and "'" not in last:  # a path in the run directory: its `<` is
            return f"{self._head_text}'{last}'"  # not safe in a shell word, so `quote` quotes it whole
        return self._head_text + self._quote(last)

    def _quote(self, word: str) -> str:
        quoted = self._quoted.get(word)
        if quoted is None:
            quoted = _quote(word)
            if len(self._quoted) < self._KEPT_WORDS:
                self._quoted[word] = quoted
        return quoted


def _where_line(inst: TaskInstance, placement: Placement) -> str:
    where = ", ".join([n.name for n in placement.nodes])
    if placement.gpus:
        where += " gpus " + ";".join(",".join(map(str, g)) for g in placement.gpus)
    return f"\n   backend: {inst.backend}  operator: {inst.operator.name}  nodes: {where}"
