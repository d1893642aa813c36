"""The whole workflow file: `WorkflowSpec`, with helpers that resolve default backend and operator."""

import functools
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from sflow.errors import SpecError
from sflow.schema.base import SpecModel, attach_origins, check, dump, settle_origins
from sflow.schema.fieldtypes import Timeout, WorkflowName
from sflow.schema.monitor import Monitor
from sflow.schema.sections import (
    OPERATOR_TYPES,
    Artifact,
    Backend,
    BackendBase,
    BashOperator,
    DockerRunOperator,
    LocalBackend,
    Operator,
    OperatorBase,
    SrunOperator,
    StorageTarget,
    Variable,
)
from sflow.schema.task import Task

SUPPORTED_VERSIONS = ("0.1",)
IMPLICIT_BACKEND = "local"
BUILTIN_OPERATORS: dict[str, type[OperatorBase]] = {
    "bash": BashOperator,
    "srun": SrunOperator,
    "docker_run": DockerRunOperator,
}
"""The operators a task may use without declaring them, by name: `builtin_operator` makes each."""


@functools.cache
def builtin_operator(name: str) -> OperatorBase:
    """The built-in operator `name`, made at its first use (KeyError for another name)."""
    return BUILTIN_OPERATORS[name](name=name)


class UploadAll(SpecModel):
    """The whole run folder, zipped once every task has ended, uploaded to a storage target
    (as `to`, under the target's prefix; `<run id>.zip` when omitted)."""

    target: str
    to: str | None = None
    on_error: Literal["warn", "fail"] = "warn"


class Workflow(SpecModel):
    name: WorkflowName
    tasks: Annotated[list[Task], msgspec.Meta(min_length=1)]
    variables: dict[str, Variable] = {}
    timeout: Timeout | None = None
    monitor: Monitor | None = None  # sampled for the whole run
    upload_all: UploadAll | None = None


def _supported_version(value: Any) -> str:
    text = str(value) if isinstance(value, (str, float, int)) and not isinstance(value, bool) else None
    if text not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported version {value!r} (supported: {', '.join(SUPPORTED_VERSIONS)})")
    return text


class WorkflowSpec(SpecModel):
    """A validated workflow: what `load_workflow` returns."""

    version: Annotated[Any, check(_supported_version)]
    variables: dict[str, Variable] = {}
    artifacts: dict[str, Artifact] = {}
    backends: dict[str, Backend] = {}
    operators: dict[str, Operator] = {}
    storage: dict[str, StorageTarget] = {}
    workflow: Workflow

    @property
    def tasks(self) -> list[Task]:
        return self.workflow.tasks

    @property
    def sources(self) -> tuple[str, ...]:
        """The YAML files this spec was loaded from, in merge order."""
        sources: tuple[str, ...] = self.__dict__.get("_sources", ())
        return sources

    @sources.setter
    def sources(self, files: tuple[str, ...]) -> None:
        self.__dict__["_sources"] = files

    def task_by_name(self, name: str) -> Task:
        """The task called `name` (KeyError when there is none)."""
        tasks = self.__dict__.get("_tasks")
        if tasks is None:
            tasks = self.__dict__["_tasks"] = {task.name: task for task in self.workflow.tasks}
        return tasks[name]

    def default_backend_name(self) -> str:
        """The backend of tasks that name none: the `default: true` one, the only one, or `local`."""
        if not self.backends:
            return IMPLICIT_BACKEND
        for name, backend in self.backends.items():
            if backend.default:
                return name
        if len(self.backends) == 1:
            return next(iter(self.backends))
        raise SpecError(
            f"several backends ({', '.join(self.backends)}) and none has 'default: true'",
            where=self.loc("backends"),
            field="backends",
        )

    def backend_for(self, task: Task | str) -> str:
        """The name of the backend a task runs on (its own, or `default_backend_name()`)."""
        task = self.task_by_name(task) if isinstance(task, str) else task
        return task.backend or self.default_backend_name()

    def backend_config(self, name: str) -> BackendBase:
        """The backend called `name`; `local` exists even when not declared (one synthetic node)."""
        if name in self.backends:
            return self.backends[name]
        if name == IMPLICIT_BACKEND:
            return LocalBackend(name=IMPLICIT_BACKEND, default=not self.backends)
        raise KeyError(name)

    def enable_monitors(self, whole_run: bool, tasks: Sequence[str]) -> None:
        """`sflow run --enable-workflow-monitor/--enable-task-monitor`: a monitor with every default
        where the file has none (a monitor the file declares is kept). KeyError for an unknown task."""
        unknown = [name for name in tasks if not any(t.name == name for t in self.workflow.tasks)]
        if unknown:
            known = ", ".join(t.name for t in self.workflow.tasks)
            raise KeyError(f"no task named {', '.join(map(repr, unknown))} (tasks: {known})")
        if not whole_run and not tasks:
            return  # nothing to add: the origins stay unwalked until a message needs one
        settle_origins()  # the monitors made here come from no file
        if whole_run and self.workflow.monitor is None:
            self.workflow.monitor = Monitor()
        for task in self.workflow.tasks:
            if task.name in tasks and task.monitor is None:
                task.monitor = Monitor()

    def backend_type(self, name: str) -> str:
        """`local`, `slurm` or `docker` for the backend called `name`."""
        return self.backend_config(name).type

    def operator_name_for(self, task: Task | str) -> str:
        """The operator name a task uses: its own, or its backend's default (`bash` / `srun`)."""
        task = self.task_by_name(task) if isinstance(task, str) else task
        if task.operator is not None:
            return task.operator.name
        return self.backend_config(self.backend_for(task)).default_operator

    def operator_for(self, task: Task | str) -> OperatorBase:
        """The operator a task uses, with the task's overrides applied (validated at load time)."""
        task = self.task_by_name(task) if isinstance(task, str) else task
        base = self.named_operator(self.operator_name_for(task))
        if task.operator is None or not task.operator.overrides:
            return base
        operator = msgspec.convert(self.operator_data(task), OPERATOR_TYPES[base.type], strict=False)
        attach_origins(operator, task.operator.locations(), task.path("operator"))
        return operator

    def operator_data(self, task: Task) -> dict[str, Any]:
        """The data of a task's operator: its named operator's with the task's overrides."""
        base = self.named_operator(self.operator_name_for(task))
        overrides = task.operator.overrides if task.operator is not None else {}
        data = {**dump(base), **overrides, "name": base.name}
        if "extra_args" in overrides:  # a task's extra_args are added to its operator's
            data["extra_args"] = [*getattr(base, "extra_args", ()), *overrides["extra_args"]]
        return data

    def named_operator(self, name: str) -> OperatorBase:
        """A declared operator, or the built-in `bash`/`srun`/`docker_run` (KeyError otherwise)."""
        if name in self.operators:
            return self.operators[name]
        return builtin_operator(name)

    def find_variable(self, name: str, task: Task | str | None = None) -> Variable:
        """The variable `name` as `task` sees it (its own, else workflow, else top level); KeyError."""
        if task is not None:
            task = self.task_by_name(task) if isinstance(task, str) else task
            if name in task.variables:
                return task.variables[name]
        if name in self.workflow.variables:
            return self.workflow.variables[name]
        return self.variables[name]

    def variables_for(self, task: Task | str) -> dict[str, Variable]:
        """Variables visible to a task: top-level, then workflow, then the task's own (later wins)."""
        task = self.task_by_name(task) if isinstance(task, str) else task
        return {**self.variables, **self.workflow.variables, **task.variables}
