"""Checks that need the whole workflow: names that must refer to something, at most one default.

Cycles are left to `sflow.engine.graph`. Every failure is a `SpecError` at the offending line, added to
the `Problems` of the load so that all of them are reported together.
"""

from __future__ import annotations

import itertools
import operator
import warnings
from collections.abc import Sequence

from sflow.errors import SpecError
from sflow.schema.compose import ComposeWarning, is_missable
from sflow.schema.overrides import SET
from sflow.schema.problems import Problems
from sflow.schema.sections import OPERATOR_TYPES
from sflow.schema.suggest import suggest
from sflow.schema.task import Task, Upload, replica_name, sweep_names
from sflow.schema.variable_order import resolution_order
from sflow.schema.workflow import BUILTIN_OPERATORS, IMPLICIT_BACKEND, UploadAll, WorkflowSpec

NOT_RUN_OPERATOR_TYPES = ("ssh",)
"""Operator types the files may declare (nv-sflow's files do) but no launcher runs: a task that
uses one is a mistake at its `operator:` line, found before anything starts."""
RUN_OPERATOR_TYPES = tuple(t for t in OPERATOR_TYPES if t not in NOT_RUN_OPERATOR_TYPES)


def check_spec(spec: WorkflowSpec, problems: Problems, missable_tasks: Sequence[str] = ()) -> None:
    """Add a `SpecError` to `problems` for each reference that does not resolve."""
    with problems.collecting():
        _single_default_backend(spec)
    tasks = _unique_tasks(spec, problems)
    _fold_required_by(tasks)
    _dependencies(spec.workflow.tasks, tasks, missable_tasks, problems)
    _probe_loggers(spec.workflow.tasks, tasks, missable_tasks, problems)
    _backends_and_operators(spec, problems)
    _replica_sweeps(spec, problems)
    _unswept_set_domains(spec)
    _replica_names(spec, tasks, problems)
    _monitored_tasks(spec, tasks, problems)
    _storage_targets(spec, problems)
    _variable_cycles(spec, problems)


def _variable_cycles(spec: WorkflowSpec, problems: Problems) -> None:
    """Variables of one scope whose values read each other in a ring cannot be resolved."""
    scopes = [spec.variables, spec.workflow.variables, *(t.variables for t in spec.workflow.tasks)]
    for variables in scopes:
        if variables and len(variables) > 1:
            with problems.collecting():
                resolution_order(variables)


def _fold_required_by(tasks: dict[str, Task]) -> None:
    """`A required_by: [B]` is `B depends_on: [A]`; a target no file defines is skipped, so an
    optional fragment can point at a hub task that may not be there."""
    for task in tasks.values():
        for target in task.required_by:
            other = tasks.get(target)
            if other is not None and task.name not in other.depends_on:
                other.depends_on.append(task.name)


def _monitored_tasks(spec: WorkflowSpec, index: dict[str, Task], problems: Problems) -> None:
    """A monitor's `resources.used_by_tasks` names tasks of the workflow."""
    for monitor in [spec.workflow.monitor, *(task.monitor for task in spec.workflow.tasks)]:
        resources = monitor.resources if monitor is not None else None
        if resources is None or not resources.used_by_tasks:
            continue
        for position, name in enumerate(resources.used_by_tasks):
            if name in index:
                continue
            locs = resources.locations()
            problems.add(
                SpecError(
                    f"monitors unknown task '{name}'{suggest(name, index)}",
                    where=locs.leaf("used_by_tasks").where_of(position) if locs else "",
                    field=resources.path("used_by_tasks"),
                )
            )


def _single_default_backend(spec: WorkflowSpec) -> None:
    defaults = [backend for backend in spec.backends.values() if backend.default]
    if len(defaults) > 1:
        first, second = defaults[0], defaults[1]
        raise SpecError(
            f"more than one default backend ('{first.name}' at {first.loc('default')} and '{second.name}')",
            where=second.loc("default"),
            field=second.path("default"),
        )


def _unique_tasks(spec: WorkflowSpec, problems: Problems) -> dict[str, Task]:
    tasks = spec.workflow.tasks
    index = {task.name: task for task in tasks}
    if len(index) != len(tasks):
        seen: dict[str, Task] = {}
        for task in tasks:
            first = seen.setdefault(task.name, task)
            if first is not task:
                problems.add(
                    SpecError(
                        f"duplicate task name '{task.name}' (first defined at {first.loc('name')})",
                        where=task.loc("name"),
                        field=task.path("name"),
                    )
                )
    spec.__dict__["_tasks"] = index  # `task_by_name`'s index, made here once
    return index


_DEPENDS_ON = operator.attrgetter("depends_on")


def _dependencies(
    tasks: list[Task], index: dict[str, Task], missable: Sequence[str], problems: Problems
) -> None:
    """Every `depends_on` names a task; one naming an absent task that a `missable` name or glob
    matches is dropped, with a warning."""
    named = itertools.chain.from_iterable(map(_DEPENDS_ON, tasks))
    if all(map(index.__contains__, named)):  # one look-up per name, no set of them all
        return
    for task in tasks:
        dropped = []
        for position, dep in enumerate(task.depends_on):
            if dep in index:
                continue
            if is_missable(dep, missable):
                dropped.append(dep)
                continue
            locs = task.locations()
            where = locs.leaf("depends_on").where_of(position) if locs else ""
            problems.add(
                SpecError(
                    f"depends on unknown task '{dep}'{suggest(dep, index)}",
                    where=where,
                    field=task.path("depends_on"),
                )
            )
        if dropped:
            task.depends_on = [dep for dep in task.depends_on if dep not in dropped]
            names = ", ".join(f"'{dep}'" for dep in dropped)
            warnings.warn(
                f"{task.loc('depends_on')}: task '{task.name}' no longer depends on {names}: "
                "absent, and missable (--missable-tasks)",
                ComposeWarning,
                stacklevel=2,
            )


def _probe_loggers(
    tasks: list[Task], index: dict[str, Task], missable: Sequence[str], problems: Problems
) -> None:
    """A log_watch `logger` names a task (or a replica, `server_0`); one naming an absent task a
    `missable` name or glob matches is dropped and the probe watches its own task's log, as
    nv-sflow does."""
    for task in tasks:
        if task.probes is None:
            continue
        for probe in (*task.probes.readiness, *task.probes.failure):
            watch = probe.log_watch
            if watch is None or watch.logger is None or _names_a_task(watch.logger, index):
                continue
            if is_missable(watch.logger, missable):
                watch.logger = None
                continue
            problems.add(
                SpecError(
                    f"logger names unknown task '{watch.logger}'{suggest(watch.logger, index)}",
                    where=watch.loc("logger"),
                    field=watch.path("logger"),
                )
            )


def _names_a_task(name: str, index: dict[str, Task]) -> bool:
    if name in index:
        return index[name].replicas is None
    base = name.rpartition("_")[0]
    while base:
        if base in index and index[base].replicas is not None:
            return True
        base = base.rpartition("_")[0]
    return False


def _backends_and_operators(spec: WorkflowSpec, problems: Problems) -> None:
    backends = [*spec.backends, IMPLICIT_BACKEND]
    operators = {*spec.operators, *BUILTIN_OPERATORS}
    needs_default = False
    for task in spec.workflow.tasks:
        if task.backend is None:
            needs_default = True
        elif task.backend not in spec.backends and task.backend != IMPLICIT_BACKEND:
            problems.add(
                SpecError(
                    f"unknown backend '{task.backend}'{suggest(task.backend, backends)}",
                    where=task.loc("backend"),
                    field=task.path("backend"),
                )
            )
        if task.operator is not None:
            _operator_ref(spec, task, operators, problems)
    if needs_default:
        with problems.collecting():
            spec.default_backend_name()


def _operator_ref(spec: WorkflowSpec, task: Task, known: set[str], problems: Problems) -> None:
    """The named operator exists and the task's overrides are valid fields of its type."""
    ref = task.operator
    assert ref is not None
    if ref.name not in known:
        problems.add(
            SpecError(
                f"unknown operator '{ref.name}'{suggest(ref.name, sorted(known))}",
                where=ref.loc("name"),
                field=ref.path("name"),
            )
        )
        return
    base = spec.named_operator(ref.name)
    if base.type in NOT_RUN_OPERATOR_TYPES:
        problems.add(
            SpecError(
                f"operator '{ref.name}' is of type '{base.type}', which this version reads but cannot "
                f"run; use one of: {', '.join(RUN_OPERATOR_TYPES)}",
                where=ref.loc("name"),
                field=ref.path("name"),
            )
        )
        return
    overrides = ref.overrides
    if not overrides:
        return
    if "type" in overrides:
        problems.add(
            SpecError(
                "a task cannot change its operator's type", where=ref.loc("type"), field=ref.path("type")
            )
        )
        return
    from sflow.schema.validation import read

    base = spec.named_operator(ref.name)
    read(spec.operator_data(task), OPERATOR_TYPES[base.type], ref.locations(), problems, prefix=ref.path())


def _replica_sweeps(spec: WorkflowSpec, problems: Problems) -> None:
    """`replicas.variables` names variables visible to the task that have a `domain`."""
    for task in spec.workflow.tasks:
        if task.replicas is None or not task.replicas.variables:
            continue
        visible = spec.variables_for(task)
        for position, name in enumerate(task.replicas.variables):
            variable = visible.get(name)
            locs = task.replicas.locations()
            where = locs.leaf("variables").where_of(position) if locs else ""
            field = task.replicas.path("variables")
            if variable is None:
                message = f"unknown variable '{name}'{suggest(name, visible)}"
            elif not variable.domain:
                message = f"variable '{name}' has no domain to sweep (declared at {variable.loc()})"
            else:
                continue
            problems.add(SpecError(message, where=where, field=field))


def _unswept_set_domains(spec: WorkflowSpec) -> None:
    """`--set NAME=[a,b]` gives NAME a domain to sweep; said once when no task sweeps it, since
    the run then uses one value only (a user expecting a sweep would otherwise not know)."""
    swept = {name for task in spec.workflow.tasks if task.replicas for name in task.replicas.variables}
    for variables in (spec.variables, spec.workflow.variables):
        for name, variable in variables.items():
            if name not in swept and variable.domain and variable.loc("domain").startswith(SET):
                warnings.warn(
                    f"{SET} {name}=[...] gives '{name}' a domain, but no task sweeps it "
                    f"(replicas.variables): every task uses {name}={variable.value!r}",
                    ComposeWarning,
                    stacklevel=2,
                )


def _replica_names(spec: WorkflowSpec, tasks: dict[str, Task], problems: Problems) -> None:
    """A replica's name (`train_1`, `bench_16`) is not also the name of another task (one of them
    would be lost)."""
    if all(task.replicas is None for task in tasks.values()):
        return
    replicas: dict[str, tuple[Task, int]] = {}
    for task in tasks.values():
        if task.replicas is not None:
            for index, name in enumerate(_known_replica_names(spec, task)):
                replicas[name] = (task, index)
    for name, other in tasks.items():
        if name in replicas:
            task, index = replicas[name]
            problems.add(
                SpecError(
                    f"task name '{name}' is also the name of replica {index} of task '{task.name}' "
                    f"(at {task.loc('name')}); rename one of them",
                    where=other.loc("name"),
                    field=other.path("name"),
                )
            )


def _known_replica_names(spec: WorkflowSpec, task: Task) -> list[str]:
    """The names `task`'s replicas will have, when known before rendering ([] for an expression)."""
    assert task.replicas is not None
    count = _replica_count(spec, task)
    if count is None:
        return []
    if not task.replicas.variables:
        return [replica_name(task.name, i) for i in range(count)]
    visible = spec.variables_for(task)
    axes = [[(name, v) for v in visible[name].domain or ()] for name in task.replicas.variables]
    return sweep_names(task.name, [dict(point) for point in itertools.product(*axes)])


def _replica_count(spec: WorkflowSpec, task: Task) -> int | None:
    """How many replicas `task` has, when known before rendering (None for an expression)."""
    assert task.replicas is not None
    if task.replicas.variables:
        visible = spec.variables_for(task)
        count = 1
        for name in task.replicas.variables:
            variable = visible.get(name)
            if variable is None or not variable.domain:
                return None  # reported by `_replica_sweeps`
            count *= len(variable.domain)
        return count
    return task.replicas.count if isinstance(task.replicas.count, int) else None


def _storage_targets(spec: WorkflowSpec, problems: Problems) -> None:
    """Every upload (a task's, `workflow.upload_all`) names a declared storage target."""
    uploads: list[Upload | UploadAll] = [u for task in spec.workflow.tasks for u in task.uploads]
    if spec.workflow.upload_all is not None:
        uploads.append(spec.workflow.upload_all)
    for upload in uploads:
        if upload.target not in spec.storage:
            known = f" (declared: {', '.join(spec.storage)})" if spec.storage else " (no 'storage' declared)"
            problems.add(
                SpecError(
                    f"unknown storage target '{upload.target}'{suggest(upload.target, spec.storage) or known}",
                    where=upload.loc("target"),
                    field=upload.path("target"),
                )
            )
