"""What of a YAML task instance decides its result, as a fingerprint per instance.

Covered: the script as written and every value its expressions and environment can read
(variables, the instance's sweep values and replica index, artifacts, the workflow name),
its operator, its backend's type and fields that shape the nodes, its resource request,
and the fingerprints of what it depends on. Not covered, on purpose: the nodes it lands on
and the run directory (both differ from one run to the next without changing the work), and
retries, timeout and probes (they decide whether a result is accepted, not what it is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sflow.record.fingerprint import chain, digest
from sflow.schema.base import as_json

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec
    from sflow.workflow.plan import Plan, TaskInstance

_NOT_THE_RESULT = {"retries", "timeout", "probes", "depends_on", "replicas", "monitor"}
_BACKEND_BOOKKEEPING = {"name", "default", "time", "job_name", "account", "max_concurrent"}


def task_fingerprints(spec: WorkflowSpec, plan: Plan) -> dict[str, str]:
    """The fingerprint of every instance of `plan`."""
    own = _OwnDigests(spec)
    mine = {inst.name: own.of(inst) for inst in plan.instances}
    return chain(mine, {inst.name: inst.deps for inst in plan.instances}, plan.order)


class _OwnDigests:
    """Digests of one instance's own definition; parts shared by many instances are made once."""

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.run_wide = digest(
            {
                "workflow": spec.workflow.name,
                "variables": _variables(spec.variables),
                "workflow_variables": _variables(spec.workflow.variables or {}),
                "artifacts": {n: as_json(a) for n, a in spec.artifacts.items()},
            }
        )
        self._tasks: dict[int, str] = {}
        self._operators: dict[int, str] = {}
        self._backends: dict[str, str] = {}

    def of(self, inst: TaskInstance) -> str:
        return digest(
            [
                self.run_wide,
                self._task(inst),
                self._operator(inst),
                self._backend(inst.backend),
                inst.name,
                inst.replica_index,
                inst.sweep,
                repr(inst.request),  # a frozen dataclass: its repr lists every field
            ]
        )

    def _task(self, inst: TaskInstance) -> str:
        key = id(inst.task)
        found = self._tasks.get(key)
        if found is None:
            data = as_json(inst.task, exclude=_NOT_THE_RESULT)
            data["variables"] = _variables(inst.task.variables or {})
            found = self._tasks[key] = digest(data)
        return found

    def _operator(self, inst: TaskInstance) -> str:
        key = id(inst.operator)
        found = self._operators.get(key)
        if found is None:
            found = self._operators[key] = digest(as_json(inst.operator))
        return found

    def _backend(self, name: str) -> str:
        found = self._backends.get(name)
        if found is None:
            config = self.spec.backend_config(name)
            found = self._backends[name] = digest(as_json(config, exclude=_BACKEND_BOOKKEEPING))
        return found


def _variables(variables: Any) -> dict[str, Any]:
    """Variables as they decide results: value, type and domain (a description changes nothing)."""
    return {name: as_json(var, exclude=("description", "name")) for name, var in variables.items()}
