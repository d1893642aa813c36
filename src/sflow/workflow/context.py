"""The values expressions can reach and the environment every task gets.

`variables.X` (with `.domain`), `backends.<b>.nodes[i].{name, ip_address, index, num_gpus}`,
`artifacts.<a>.{path, uri}`, `workflow.name`, and in scripts `task.<t>.{nodes, gpus}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.backends.base import JOB_PLACEHOLDER, Allocation
from sflow.backends.placement import Node
from sflow.schema.base import dump
from sflow.schema.expressions import (
    START,
    ExpressionError,
    evaluate,
    failure,
    has_expression,
    needs_rendering,
    one_expression,
    reads,
    render,
    render_value,
    split_expressions,
)
from sflow.schema.locations import where_at
from sflow.schema.models import SlurmBackend
from sflow.schema.validation import validated
from sflow.schema.variable_order import ordered

if TYPE_CHECKING:
    from sflow.backends.placement import Placement
    from sflow.schema import WorkflowSpec
    from sflow.workflow.plan import TaskInstance


class _Str(str):
    domain: list[Any]


class _Int(int):
    domain: list[Any]


class _Float(float):
    domain: list[Any]


class _List(list[Any]):
    domain: list[Any]


def with_domain(value: Any, domain: list[Any] | None) -> Any:
    """The value as expressions see it: itself, plus `.domain` (bools stay plain: they cannot carry it)."""
    kinds: list[tuple[type, type]] = [(bool, bool), (int, _Int), (float, _Float), (str, _Str), (list, _List)]
    for base, wrapper in kinds:
        if isinstance(value, base):
            if wrapper is bool:
                return value
            out = wrapper(value)
            out.domain = list(domain or [])
            return out
    return value


def artifact_path(uri: str, workspace: Path, run_dir: Path) -> str:
    """Where an artifact lives: fs:// under the workspace, file:// with content under the run dir."""
    for scheme, root in (("fs://", workspace), ("file://", run_dir)):
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            path = Path(rest)
            return str(path if path.is_absolute() else (root / path))
    return uri


def artifacts_context(
    spec: WorkflowSpec, workspace: Path, run_dir: Path, write: bool
) -> dict[str, dict[str, str]]:
    """`artifacts.<a>.{path, uri}`; inline `content` is written to its file when `write`."""
    out = {}
    for name, art in spec.artifacts.items():
        uri = str(art.uri)
        if art.content is not None:
            path = artifact_path(uri, workspace, run_dir)
            if write:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(art.content, encoding="utf-8")
        elif uri.startswith("file://"):
            path = artifact_path("fs://" + uri[len("file://") :], workspace, run_dir)
        else:
            path = artifact_path(uri, workspace, run_dir)
        out[name] = {"path": path, "uri": uri}
    return out


def backends_context(allocations: Mapping[str, Allocation], types: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: {"name": name, "type": types.get(name, ""), "nodes": [n.as_dict() for n in alloc.nodes]}
        for name, alloc in allocations.items()
    }


def resolve_variables(
    variables: Mapping[str, Any], context: dict[str, Any], where: str = "variables"
) -> dict[str, Any]:
    """Render variable values, each after the ones it reads (declaration order otherwise)."""
    resolved: dict[str, Any] = dict(context.get("variables", {}))
    context["variables"] = resolved
    for name, var in ordered(variables):
        value = var.value
        if (isinstance(value, str) and has_expression(value)) or isinstance(value, (list, dict)):
            value = render_value(value, context, where=var.loc("value"), field=var.path("value"))
        resolved[name] = with_domain(value, var.domain)
    return resolved


def env_value(value: Any) -> str:
    """How a variable looks in a task's environment: scalars as text, lists and maps as JSON.

    A boolean is `True`/`False`, as `${{ variables.X }}` renders it in a script (and as nv-sflow
    exports it), so `$X` and `${{ variables.X }}` never disagree.
    """
    if isinstance(value, (list, dict)):
        return json.dumps(list(value) if isinstance(value, list) else value)
    return str(value)


def base_context(
    spec: WorkflowSpec, workspace: Path, run_dir: Path, write_artifacts: bool = True
) -> dict[str, Any]:
    """What is known before any allocation: the workflow, artifacts and top-level variables.

    Backend fields may use these (`partition: ${{ variables.PARTITION }}`).
    """
    context: dict[str, Any] = {
        "workflow": {"name": spec.workflow.name},
        "artifacts": artifacts_context(spec, workspace, run_dir, write=write_artifacts),
        "backends": {},
        "task": {},
    }
    resolve_variables(spec.variables, context)
    return context


def rendered_backend_config(spec: WorkflowSpec, name: str, context: dict[str, Any]) -> Any:
    """The backend's config with any `${{ }}` in its fields rendered (and validated again).

    A Slurm job is named after the workflow unless the backend names it (`job_name`).
    """
    config = spec.backend_config(name)
    if isinstance(config, SlurmBackend) and config.job_name is None:
        config = msgspec.structs.replace(config, job_name=spec.workflow.name)
    data = dump(config)
    if not _has_any_expression(data):
        return config
    rendered = render_value(data, context, where=config.loc(), field=config.path())
    return validated(rendered, type(config), config.locations(), config.path())


def _has_any_expression(value: Any) -> bool:
    if isinstance(value, str):
        return has_expression(value)
    if isinstance(value, dict):
        return any(_has_any_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_any_expression(v) for v in value)
    return False


def add_backends(context: dict[str, Any], spec: WorkflowSpec, allocations: Mapping[str, Allocation]) -> None:
    """Once nodes are known: `backends.<b>.nodes[i]`, then workflow variables (which may use them)."""
    context["backends"] = backends_context(allocations, {n: spec.backend_type(n) for n in allocations})
    resolve_variables(spec.workflow.variables or {}, context)


def task_scope(context: dict[str, Any], inst: TaskInstance, placement: Placement) -> dict[str, Any]:
    """The context one task instance renders with: its variables and sweep values on top."""
    _add_task(context, inst, placement)
    return _scope(context, inst)


class _NodeRef(str):
    """A node of a task as expressions see it: its name, with `.name`, `.ip_address`, `.index`
    and `.num_gpus` (`${{ task.server.nodes[0] }}` and `...nodes[0].ip_address` both work)."""

    def __new__(cls, node: Node) -> _NodeRef:
        ref = super().__new__(cls, node.name)
        ref.name, ref.ip_address, ref.index, ref.num_gpus = (
            node.name,
            node.ip_address,
            node.index,
            node.num_gpus,
        )
        return ref

    name: str
    ip_address: str
    index: int  # type: ignore[assignment]  # the node's index, not str.index
    num_gpus: int


def _add_task(context: dict[str, Any], inst: TaskInstance, placement: Placement) -> None:
    """`task.<name>.{nodes, ip_addresses, gpus, replica_index, backend, operator, service}`, for this task
    and those after it; a replica is also `task.<task>[i]`."""
    entry = {
        "nodes": [_NodeRef(n) for n in placement.nodes],
        "ip_addresses": [n.ip_address for n in placement.nodes],
        "gpus": placement.gpu_list,
        "replica_index": inst.replica_index,
        "backend": inst.backend,
        "operator": inst.operator.name,
        "service": _service(inst, placement),
    }
    tasks = context["task"]
    tasks[inst.name] = entry
    if inst.replica_index is not None and inst.name != inst.task.name:
        replicas = tasks.setdefault(inst.task.name, [])
        replicas.extend([None] * (inst.replica_index + 1 - len(replicas)))
        replicas[inst.replica_index] = entry


def _service(inst: TaskInstance, placement: Placement) -> dict[str, Any]:
    """`host` (the first node's address), `port` (the first of `ports`) and `url` (http://host:port)."""
    host = placement.nodes[0].ip_address if placement.nodes else ""
    port = inst.task.ports[0].port if inst.task.ports else ""
    return {"host": host, "port": port, "url": f"http://{host}:{port}" if host and port != "" else ""}


def _scope(context: dict[str, Any], inst: TaskInstance) -> dict[str, Any]:
    scope = dict(context)
    scope["variables"] = dict(context["variables"])
    for name, value in inst.sweep.items():  # first, so the task's own variables can build on them
        declared = inst.task.variables.get(name)
        domain = declared.domain if declared else getattr(context["variables"].get(name), "domain", None)
        scope["variables"][name] = with_domain(value, domain)  # `variables.X.domain` still works
    if inst.follows_sweep:  # `RUN: lr_${{ variables.LR }}` follows a swept LR
        resolve_variables(inst.follows_sweep, scope)
    own = {name: var for name, var in (inst.task.variables or {}).items() if name not in inst.sweep}
    resolve_variables(own, scope)
    scope["replica_index"] = inst.replica_index
    return scope


def render_script(inst: TaskInstance, scope: dict[str, Any]) -> str:
    text = "\n".join(inst.task.script or ())
    try:
        body = render(text, scope, where=inst.task.loc("script"), field=inst.task.path("script"))
    except ExpressionError as exc:
        raise at_script_line(exc, inst.task) from None
    return script_file(inst, body)


def script_file(inst: TaskInstance, body: str) -> str:
    """The file a task runs: its rendered script after a bash `#!` line.

    With `fail_fast: true` a shell script starts with `set -e`, so a failing command fails the
    task instead of being hidden by a later one that succeeds (nv-sflow's meaning; unset or false,
    only the last command's exit code counts, as in any shell script). The python operator runs
    the file as Python source, so it gets no `set -e`.
    """
    head = "#!/usr/bin/env bash\n"
    if inst.task.fail_fast and inst.operator.type != "python":
        head += "set -e\n"
    return head + body + "\n"


def at_script_line(error: ExpressionError, task: Any) -> ExpressionError:
    """The error located at the script item (and line of a `|` block) holding its expression."""
    if error.source is None:
        return error
    marker = START + error.source + "}}"
    for index, item in enumerate(task.script or ()):
        at = item.find(marker)
        if at == -1:
            continue
        where = where_at(task.locations(), ["script", index]) or error.where
        if where and "\n" in item:
            file, _, line = where.rpartition(":")
            if line.isdigit():  # the expression's line inside the block
                where = f"{file}:{int(line) + item.count(NEWLINE, 0, at) + 1}"
        moved = ExpressionError(error.message, where=where, field=f"{task.path('script')}[{index}]")
        moved.source = error.source
        return moved
    return error


NEWLINE = "\n"
RUN_WIDE = frozenset({"workflow", "artifacts", "backends", "variables"})


class ScriptRenderer:
    """`render_script(inst, task_scope(context, inst, placement))` for every instance of a plan, in
    order, with each expression that reads only run-wide values evaluated once.

    An expression is evaluated once when it reads nothing but `workflow`, `artifacts`, `backends` and
    variables by constant name (`variables.X`), none of which the task sets itself (its `variables`,
    its sweep), and it is pure (`expressions.reads`): then the task's scope hands it the very objects
    the run-wide context holds, and its text is the same for every task. Those objects could only
    change through an impure expression (`${{ variables.L.append(1) }}`), so the values kept are
    dropped whenever a task renders anything that is not pure (or its variables or script use
    statements). `task.<t>` and `replica_index` differ per task and are always evaluated.

    `context["task"]` gets the entries of the tasks rendered so far only when something that may read
    it is evaluated: a plan whose expressions never use `task` does not build them at all.
    """

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self._values: dict[str, str] = {}
        self.left_cycles = False  # a whole Jinja template (`${% %}`) was rendered: it leaves cycles
        self._unlisted: list[TaskInstance] = []  # rendered, not yet in context["task"]
        self._unlisted_placements: list[Placement] = []

    def render(self, inst: TaskInstance, placement: Placement) -> str:
        """The script of `inst`, placed at `placement` (instances in start order)."""
        return script_file(inst, self.render_body(inst, placement))

    def render_body(self, inst: TaskInstance, placement: Placement) -> str:
        """`render()` without the `#!` line and the final newline."""
        self._unlisted.append(inst)
        self._unlisted_placements.append(placement)
        task = inst.task
        scope = None
        if task.variables:
            if not all(_pure(var.value) for var in task.variables.values()):
                self._values.clear()
                self.left_cycles = True  # (or something impure: no matter)
            scope = self._scope(inst)
        script = task.script
        text = script[0] if script and len(script) == 1 else "\n".join(script or ())
        if not needs_rendering(text):
            return text
        values, shared = self._values, not task.variables and not inst.sweep
        if shared:  # the common case first: one expression, its value already kept
            one = one_expression(text)
            if one is not None and one[1] in values:
                return one[0] + values[one[1]] + one[2]
        split = split_expressions(text)
        if split is None:
            self._values.clear()
            self.left_cycles = True
            scope = scope or self._scope(inst)
            try:
                return render(text, scope, where=task.loc("script"), field=task.path("script"))
            except ExpressionError as exc:
                raise at_script_line(exc, task) from None
        plain, sources = split
        out = [plain[0]]
        for source, after in zip(sources, plain[1:], strict=True):
            # kept for one task, a value fits every task that sets no variables of its own
            value = values.get(source) if shared else None
            if value is not None:
                out.append(value)
                out.append(after)
                continue
            read = reads(source)
            if read.pure and self._run_wide(read.names, read.keys, inst):
                value = self._values.get(source)
                if value is None:
                    value = self._values[source] = self._evaluate(source, self.context, inst)
            else:
                if not read.pure:
                    self._values.clear()
                if scope is None:
                    scope = self._scope(inst)
                value = self._evaluate(source, scope, inst)
            out.append(value)
            out.append(after)
        return "".join(out)

    def _scope(self, inst: TaskInstance) -> dict[str, Any]:
        """`task_scope`'s value, every task rendered so far listed in `context["task"]` first."""
        for listed, placement in zip(self._unlisted, self._unlisted_placements, strict=True):
            _add_task(self.context, listed, placement)
        self._unlisted.clear()
        self._unlisted_placements.clear()
        return _scope(self.context, inst)

    @staticmethod
    def _run_wide(
        names: frozenset[str], keys: Mapping[str, frozenset[str] | None], inst: TaskInstance
    ) -> bool:
        if not names <= RUN_WIDE:
            return False
        if "variables" not in names:
            return True
        used = keys["variables"]
        # the task's scope has its own copy of `variables`: only its items are shared, not its methods
        return (
            used is not None
            and not any(hasattr(dict, key) for key in used)
            and used.isdisjoint(inst.task.variables)
            and used.isdisjoint(inst.sweep)
            and used.isdisjoint(inst.follows_sweep)
        )

    @staticmethod
    def _evaluate(source: str, scope: Mapping[str, Any], inst: TaskInstance) -> str:
        try:
            return str(evaluate(source, scope))
        except Exception as exc:
            error = failure(exc, inst.task.loc("script"), inst.task.path("script"), source, scope)
            raise at_script_line(error, inst.task) from None


def _pure(value: Any) -> bool:
    """A variable value whose expressions (if any) are all pure."""
    if isinstance(value, str):
        if not needs_rendering(value):
            return True
        split = split_expressions(value)
        return split is not None and all(reads(source).pure for source in split[1])
    if isinstance(value, dict):
        return all(_pure(v) for v in value.values())
    if isinstance(value, list):
        return all(_pure(v) for v in value)
    return True


def task_env(
    spec: WorkflowSpec,
    inst: TaskInstance,
    scope: dict[str, Any],
    placement: Placement,
    workspace: Path,
    output_dir: Path,
    run_dir: Path,
    task_dir: Path,
    allocation: Allocation | None = None,
) -> dict[str, str]:
    """SFLOW_* plus every variable and artifact, as the task's environment (never its argv).

    On Slurm, `SFLOW_BACKEND_{JOB_ID,NODELIST,NUM_NODES}` describe the allocation (the step sets
    them again from Slurm's own variables, with its step and rank variables)."""
    env = {name: env_value(value) for name, value in scope["variables"].items()}
    env.update({name: art["path"] for name, art in scope["artifacts"].items()})
    env.update(
        {
            "SFLOW_WORKSPACE_DIR": str(workspace),
            "SFLOW_OUTPUT_DIR": str(output_dir),
            "SFLOW_WORKFLOW_OUTPUT_DIR": str(run_dir),
            "SFLOW_TASK_OUTPUT_DIR": str(task_dir),
            "SFLOW_TASK_RESULT_FILE": str(task_dir / "result.json"),
            "SFLOW_WORKFLOW_RESULT_FILE": str(run_dir / "results.json"),
            "SFLOW_TASK_NAME": inst.name,
            "SFLOW_WORKFLOW_NAME": spec.workflow.name,
            "SFLOW_REPLICA_INDEX": str(inst.replica_index or 0),
            "SFLOW_TASK_ASSIGNED_NODE_NAMES": ",".join(placement.node_names),
            "SFLOW_TASK_ASSIGNED_NODE_IPS": ",".join(n.ip_address for n in placement.nodes),
        }
    )
    if allocation is not None and spec.backend_type(inst.backend) == "slurm":
        env["SFLOW_BACKEND_JOB_ID"] = allocation.job_id or JOB_PLACEHOLDER
        env["SFLOW_BACKEND_NODELIST"] = ",".join(n.name for n in allocation.nodes)
        env["SFLOW_BACKEND_NUM_NODES"] = str(len(allocation.nodes))
    if placement.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in placement.gpu_list)
    return env


def shared_paths(
    artifacts: Mapping[str, Mapping[str, str]],
    workspace: Path,
    output_dir: Path,
    run_dir: Path,
    task_dir: Path,
) -> tuple[str, ...]:
    """What a container task sees at the same path as the host: each local artifact (a file's
    folder; a path that does not exist yet but looks like a file, its folder; not `.sqsh` images),
    then the workspace, the output folder, the run's folder and the task's."""
    paths = []
    for art in artifacts.values():
        if not art["uri"].startswith(("fs://", "file://")) or art["path"].lower().endswith(".sqsh"):
            continue
        path = Path(art["path"])
        is_file = path.is_file() if path.exists() else bool(path.suffix)
        paths.append(str(path.parent if is_file else path))
    paths += [str(workspace), str(output_dir), str(run_dir), str(task_dir)]
    return tuple(dict.fromkeys(paths))
