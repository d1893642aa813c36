"""Expressions in the fields that shape the plan, rendered once the files are loaded.

How many replicas, retries and nodes a task has, and its timeouts, are needed before any node
is known, so their `${{ }}` may use `variables.*` (after `--set`) and `workflow.name`, nothing
else. Rendering them here keeps the rest of sflow working with plain numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from sflow.errors import SpecError
from sflow.schema.base import SpecModel
from sflow.schema.expressions import ExpressionError, render_value
from sflow.schema.fieldtypes import as_int, is_expression, retry_count, seconds, timeout_seconds
from sflow.schema.problems import Problems
from sflow.schema.sections import Variable
from sflow.schema.task import Retries, check_retry_waits
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
    for task in spec.workflow.tasks:
        if not (task.variables or task.timeout or task.retries or task.replicas or task.resources):
            continue  # nothing to render (most tasks of a big workflow)
        context = base
        if task.variables:
            context = {**base, "variables": dict(base["variables"])}
            _add_variables(context, task.variables)
        render(task, "timeout", timeout_seconds, context)
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


def _add_variables(context: dict[str, Any], variables: Mapping[str, Variable]) -> None:
    """Values in declaration order; one that needs more than is known here is simply left out."""
    for name, var in variables.items():
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
        hint = "this field is needed before nodes are known: it can use variables.* and workflow.name"
        problems.add(SpecError(f"{exc.message}; {hint}", where=where, field=path))
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
