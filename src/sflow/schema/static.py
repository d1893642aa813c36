"""Expressions in the fields that shape the plan, rendered once the files are loaded.

How many replicas, retries and nodes a task has, its timeouts, and every field of its operator
(named operators and a task's overrides: `ntasks_per_node`, `python_exec`, `extra_args`, ...) are
needed before any node is known, so their `${{ }}` may use `variables.*` (after `--set`) and
`workflow.name`, nothing else. Rendering them here keeps the rest of sflow working with plain
values of the field's type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from sflow.errors import SpecError
from sflow.schema.base import SpecModel, attach_origins, dump
from sflow.schema.expressions import ExpressionError, render_value
from sflow.schema.fieldtypes import as_int, is_expression, retry_count, seconds, timeout_seconds
from sflow.schema.problems import Problems
from sflow.schema.sections import OperatorBase, Variable
from sflow.schema.task import OperatorRef, Retries, check_retry_waits, port_number
from sflow.schema.validation import read
from sflow.schema.variable_order import ordered
from sflow.schema.workflow import WorkflowSpec

Check = Callable[[Any], Any]


def render_static_fields(spec: WorkflowSpec, problems: Problems) -> None:
    """Replace each expression in a plan-shaping field by its value, checked like a literal.

    A field that cannot be rendered, or renders to a value its field refuses, is added to
    `problems` (and left as it was)."""
    base: dict[str, Any] = {"workflow": {"name": spec.workflow.name}, "variables": {}}
    _add_variables(base, spec.variables)
    _add_variables(base, spec.workflow.variables)
    render = functools.partial(_render, problems=problems)
    render(spec.workflow, "timeout", timeout_seconds, base)
    for name, operator in spec.operators.items():
        spec.operators[name] = _rendered_operator(operator, base, problems)  # type: ignore[assignment]
    for task in spec.workflow.tasks:
        overrides = task.operator is not None and task.operator.overrides
        if not (
            task.variables
            or task.timeout
            or task.retries
            or task.replicas
            or task.resources
            or task.ports
            or overrides
        ):
            continue  # nothing to render (most tasks of a big workflow)
        context = base
        if task.variables:
            context = {**base, "variables": dict(base["variables"])}
            _add_variables(context, task.variables)
        if task.operator is not None and task.operator.overrides:
            _render_overrides(task.operator, context, problems)
        render(task, "timeout", timeout_seconds, context)
        for port in task.ports:
            render(port, "port", port_number, context)
        if task.retries is not None:
            _render_retries(task.retries, context, problems)
        if task.replicas is not None:
            render(task.replicas, "count", _positive, context)
            render(task.replicas, "policy", _policy, context)
        resources = task.resources
        if resources is not None and resources.nodes is not None:
            for name, check in (("count", _positive), ("indices", _indices), ("exclude", _indices)):
                render(resources.nodes, name, check, context)
        if resources is not None and resources.gpus is not None:
            render(resources.gpus, "count", _count, context)
            render(resources.gpus, "indices", _indices, context)


def _render_retries(retries: Retries, context: dict[str, Any], problems: Problems) -> None:
    """`count` and `interval`, then the waits they make together (checked once both are numbers)."""
    if not (is_expression(retries.count) or is_expression(retries.interval)):
        return
    _render(retries, "count", retry_count, context, problems)
    _render(retries, "interval", seconds, context, problems)
    if is_expression(retries.count) or is_expression(retries.interval):
        return  # already reported
    try:
        check_retry_waits(int(retries.count), float(retries.interval), retries.backoff)
    except ValueError as exc:
        problems.add(SpecError(str(exc), where=retries.loc(), field=retries.path()))


def _rendered_operator(operator: OperatorBase, context: dict[str, Any], problems: Problems) -> OperatorBase:
    """The operator with its expressions rendered and its fields checked again (so a number field
    holds a number); the operator as it was when something cannot be rendered (reported)."""
    data = dump(operator)
    if not _has_expression(data):
        return operator
    for key, value in data.items():
        if _has_expression(value):
            try:
                data[key] = render_value(value, context, where=operator.loc(key), field=operator.path(key))
            except ExpressionError as exc:
                problems.add(SpecError(f"{exc.message}; {_HINT}", where=exc.where, field=exc.field))
                return operator
    fresh = read(data, type(operator), operator.locations(), problems, prefix=operator.path())
    if fresh is None:
        return operator
    attach_origins(fresh, operator.locations(), operator.path())
    return fresh


def _render_overrides(ref: OperatorRef, context: dict[str, Any], problems: Problems) -> None:
    """A task's operator overrides (`operator: {name: srun, ntasks: ${{ variables.N }}}`), in place."""
    extra = ref.overrides
    for key, value in list(extra.items()):
        if not _has_expression(value):
            continue
        where, path = ref.loc(key), ref.path(key)
        try:
            extra[key] = render_value(value, context, where=where, field=path)
        except ExpressionError as exc:
            problems.add(SpecError(f"{exc.message}; {_HINT}", where=where, field=path))


_HINT = "this field is needed before nodes are known: it can use variables.* and workflow.name"


def _add_variables(context: dict[str, Any], variables: Mapping[str, Variable]) -> None:
    """Values in resolution order; one that needs more than is known here is simply left out."""
    for name, var in ordered(variables):
        value = var.value
        if _has_expression(value):
            try:
                value = render_value(value, context)
            except ExpressionError:
                continue  # it may use backends.*: fine for scripts, not for these fields
        context["variables"][name] = value


def _render(model: SpecModel, field: str, check: Check, context: dict[str, Any], problems: Problems) -> None:
    value = getattr(model, field)
    if not _has_expression(value):
        return
    where, path = model.loc(field), model.path(field)
    try:
        rendered = render_value(value, context, where=where, field=path)
    except ExpressionError as exc:
        problems.add(SpecError(f"{exc.message}; {_HINT}", where=where, field=path))
        return
    try:
        setattr(model, field, check(rendered))
    except ValueError as exc:
        problems.add(SpecError(f"{exc} (rendered from {value!r})", where=where, field=path))


def _count(value: Any) -> int:
    return as_int(value, 0)


def _positive(value: Any) -> int:
    return as_int(value, 1)


def _policy(value: Any) -> str:
    if value not in ("parallel", "sequential"):
        raise ValueError(f"policy must be 'parallel' or 'sequential', got {value!r}")
    return str(value)


def _indices(value: Any) -> list[int]:
    items = value if isinstance(value, list) else [value]
    return [as_int(v) for v in items]


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return is_expression(value)
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    return False
