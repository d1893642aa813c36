"""From a validated workflow to concrete task instances: replicas, sweeps, dependencies.

Pure: no processes, no allocation. Each instance knows its backend, operator, placement
request and the variables it adds (sweep values, replica index).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.backends.placement import EVERY_NODE, Request
from sflow.engine.graph import CycleError, topological_order
from sflow.errors import PlanError, SpecError
from sflow.schema.loader import gc_paused
from sflow.schema.task import replica_name, sweep_names

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec
    from sflow.schema.models import OperatorBase, Task


class TaskInstance(msgspec.Struct):
    """One runnable copy of a YAML task (a task without replicas has exactly one)."""

    name: str
    task: Task
    deps: tuple[str, ...] = ()
    replica_index: int | None = None
    sweep: dict[str, Any] = msgspec.field(default_factory=dict)
    follows_sweep: dict[str, Any] = msgspec.field(default_factory=dict)  # run-wide variables built from it
    backend: str = "local"
    operator: OperatorBase = None  # type: ignore[assignment]  # expand() always sets it
    request: Request = msgspec.field(default_factory=Request)


_NOTHING: dict[str, Any] = {}  # sweep and follows_sweep of a task without a sweep (never written to)


def at_request(error: PlanError, inst: TaskInstance) -> SpecError:
    """A placement error located at what made the request: the task's `resources`, else its operator."""
    task = inst.task
    field = "resources" if task.resources is not None else "operator" if task.operator is not None else None
    return SpecError(str(error), where=task.loc(field) or None, field=task.path(field))


class Plan(msgspec.Struct):
    """All task instances, and the order they can start in (dependencies first)."""

    instances: list[TaskInstance]
    order: list[str]

    def by_name(self) -> dict[str, TaskInstance]:
        return {i.name: i for i in self.instances}

    def in_order(self) -> list[TaskInstance]:
        instances = self.instances
        if [i.name for i in instances] == self.order:  # often so: one list, no index of names
            return list(instances)
        by_name = self.by_name()
        return [by_name[name] for name in self.order]


def expand(spec: WorkflowSpec) -> Plan:
    """Every task instance in YAML order, dependencies resolved to instance names."""
    with gc_paused():  # a big workflow makes many objects here, and no cycles (as loading does)
        return _expand(spec)


def _expand(spec: WorkflowSpec) -> Plan:
    instances: list[TaskInstance] = []
    copies_of: dict[str, list[str] | None] = {}  # instance names of each task (None: just the task's)
    setup = _Setup(spec)
    plain: dict[str | None, tuple[str, Any, Request]] = {}  # setup of tasks with no operator or resources
    for task in spec.workflow.tasks:
        if task.replicas is None:
            if task.operator is None and task.resources is None:
                shared = plain.get(task.backend)
                if shared is None:
                    shared = plain[task.backend] = setup.of(task)
                backend, operator, request = shared
            else:
                backend, operator, request = setup.of(task)
            instances.append(
                TaskInstance(task.name, task, (), None, _NOTHING, _NOTHING, backend, operator, request)
            )
            copies_of[task.name] = None
        else:
            copies = list(_copies(spec, task, setup))
            copies_of[task.name] = [c.name for c in copies]
            instances.extend(copies)
    for inst in instances:
        task = inst.task
        if inst.replica_index and task.replicas and task.replicas.policy == "sequential":
            # after the one before it, which (through the first) came after the task's dependencies
            inst.deps = (copies_of[task.name][inst.replica_index - 1],)  # type: ignore[index]
            continue
        depends_on = task.depends_on
        if not depends_on:
            continue
        if len(depends_on) == 1 and copies_of.get(depends_on[0], _DROPPED) is None:
            inst.deps = (depends_on[0],)  # the common case: one dependency, on a task without replicas
            continue
        deps: list[str] = []
        for dep in depends_on:
            names = copies_of.get(dep, _DROPPED)
            if names is None:
                deps.append(dep)
            elif names is not _DROPPED:  # else dropped by --missable-tasks composition
                deps.extend(names)
        if deps:
            inst.deps = tuple(deps)
    return Plan(instances=instances, order=_checked_order(instances))


_DROPPED: list[str] = []


def _checked_order(instances: list[TaskInstance]) -> list[str]:
    """Topological order; a cycle is reported at the `depends_on` of a task on it."""
    try:
        return topological_order({i.name: i.deps for i in instances})
    except CycleError as exc:
        first = next(i.task for i in instances if i.name == exc.cycle[0])
        raise SpecError(str(exc), where=first.loc("depends_on"), field=first.path("depends_on")) from None


class _Setup:
    """Backend, operator and placement request of each task, computed once per distinct setup."""

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self._defaults: dict[str, tuple[Any, Request]] = {}

    def of(self, task: Any) -> tuple[str, Any, Request]:
        backend = self.spec.backend_for(task)
        if task.operator is not None:  # its own operator, maybe with overrides
            operator = self.spec.operator_for(task)
            return backend, operator, request_of(task, operator)
        if backend not in self._defaults:
            operator = self.spec.operator_for(task)
            count = _operator_nodes(operator)
            self._defaults[backend] = (operator, EVERY_NODE if count is None else Request(count=count))
        operator, plain = self._defaults[backend]
        return backend, operator, plain if task.resources is None else request_of(task, operator)


def _copies(spec: WorkflowSpec, task: Any, setup: _Setup) -> Iterator[TaskInstance]:
    backend, operator, request = setup.of(task)
    base = TaskInstance(name=task.name, task=task, backend=backend, operator=operator, request=request)
    replicas = task.replicas
    if replicas is None:
        yield base
        return
    sweeps = _sweep_points(spec, task)
    count = _replica_count(task, len(sweeps))
    follows = _following_sweep(spec, task, sweeps[0]) if sweeps else {}
    names = sweep_names(task.name, sweeps) if sweeps else [replica_name(task.name, i) for i in range(count)]
    step = request.count or 0  # parallel replicas asking for `count` nodes start `count` nodes apart
    spread = step and not request.indices and replicas.policy != "sequential"
    for index in range(count):
        sweep = sweeps[index] if sweeps else {}
        yield TaskInstance(
            name=names[index],
            task=task,
            replica_index=index,
            sweep=sweep,
            follows_sweep=follows,
            backend=base.backend,
            operator=base.operator,
            request=msgspec.structs.replace(request, first=index * step) if spread and index else request,
        )


def _sweep_points(spec: WorkflowSpec, task: Any) -> list[dict[str, Any]]:
    """The Cartesian product of the swept variables' domains, in declaration order."""
    names = list(task.replicas.variables or ())
    if not names:
        return []
    axes = []
    for name in names:
        var = spec.find_variable(name, task)
        axes.append([(name, v) for v in var.domain or ()])
    return [dict(point) for point in itertools.product(*axes)]


def _following_sweep(spec: WorkflowSpec, task: Any, swept: dict[str, Any]) -> dict[str, Any]:
    """Top-level and workflow variables built (maybe through others) from a swept one, in order:
    each replica renders them again with its own sweep values. The task's own variables are
    rendered per replica anyway."""
    from sflow.schema.expressions import reads_variables
    from sflow.schema.variable_order import ordered

    changed = set(swept)
    out: dict[str, Any] = {}
    for name, var in (*ordered(spec.variables), *ordered(spec.workflow.variables)):
        if name in swept or name in task.variables:
            continue
        if reads_variables(var.value, changed):
            out[name] = var
            changed.add(name)
    return out


def _replica_count(task: Any, sweep_size: int) -> int:
    count = task.replicas.count
    if sweep_size:
        if count not in (None, sweep_size):
            raise SpecError(
                f"replicas.count is {count} but the sweep has {sweep_size} points; leave count out",
                where=task.replicas.loc("count"),
                field=task.replicas.path("count"),
            )
        return sweep_size
    if count is None or int(count) < 1:
        raise SpecError(
            "replicas needs a count of at least 1", where=task.replicas.loc(), field=task.path("replicas")
        )
    return int(count)


def request_of(task: Any, operator: Any = None) -> Request:
    """The placement request of a task: its `resources`, else the node count of its operator.

    `gpus.count` is the task's total across its nodes: split evenly over the nodes it names (or
    its operator's), over `count / len(indices)` nodes when `gpus.indices` is the slice each node
    gives, else left to the placer (one node when they fit on one). A task that asks for no node
    count, no node indices and no GPUs gets every node of its backend but the excluded ones."""
    nodes = task.resources.nodes if task.resources else None
    gpus = task.resources.gpus if task.resources else None
    count = nodes.count if nodes else None
    if count is None and not (nodes and nodes.indices):
        count = _operator_nodes(operator)
    try:
        node_indices = tuple(int(i) for i in (nodes.indices or ())) if nodes else ()
        gpu_indices = tuple(int(i) for i in (gpus.indices or ())) if gpus else ()
        total = int(gpus.count or 0) if gpus else 0
        count = None if count is None else int(count)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"task '{task.name}': resources must be whole numbers ({exc})") from None
    per_node, unplaced = 0, 0
    if total and gpu_indices:
        count = count or _split(task, total, len(gpu_indices), "len(gpus.indices)")
    elif total and (count or node_indices):
        per_node = _split(task, total, count or len(dict.fromkeys(node_indices)), "the node count")
    elif total:
        unplaced = total
    exclude = tuple(nodes.exclude or ()) if nodes else ()
    if count is None and not (node_indices or total or gpu_indices):
        return Request(exclude=exclude, every_node=True) if exclude else EVERY_NODE
    return Request(count, node_indices, exclude, per_node, gpu_indices, unplaced)


def _split(task: Any, total: int, parts: int, what: str) -> int:
    if total % parts:
        raise PlanError(
            f"task '{task.name}': gpus.count {total} is the total across the task's nodes; "
            f"it must be a multiple of {what} ({parts})"
        )
    return total // parts


def _operator_nodes(operator: Any) -> int | None:
    """The node count an operator asks for (`srun` `nodes: 2`), if it is a plain number."""
    if "nodes" not in getattr(type(operator), "__struct_fields__", ()):
        return None
    nodes = operator.nodes
    return nodes if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes > 0 else None


def select(plan: Plan, names: Sequence[str], with_deps: bool = True) -> Plan:
    """Only the named tasks (a task's name means all its replicas) and, `with_deps`, what they need.

    Without `with_deps` the selected tasks start at once: dependencies outside the selection
    are dropped (those inside it, between replicas of a sequential task, stay).
    """
    from sflow.errors import suggest

    by_name = plan.by_name()
    wanted: set[str] = set()
    for name in names:
        found = [i.name for i in plan.instances if i.name == name or i.task.name == name]
        if not found:
            raise PlanError(f"--task {name}: no such task{suggest(name, _task_names(plan))}")
        wanted.update(found)
    if with_deps:
        todo = list(wanted)
        while todo:
            for dep in by_name[todo.pop()].deps:
                if dep not in wanted:
                    wanted.add(dep)
                    todo.append(dep)
    chosen = [i for i in plan.instances if i.name in wanted]
    if not with_deps:
        chosen = [msgspec.structs.replace(i, deps=tuple(d for d in i.deps if d in wanted)) for i in chosen]
    return Plan(instances=chosen, order=[n for n in plan.order if n in wanted])


def _task_names(plan: Plan) -> list[str]:
    return list(dict.fromkeys(n for i in plan.instances for n in (i.task.name, i.name)))
