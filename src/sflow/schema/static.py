"""Expressions in the fields that shape the plan, rendered once the files are loaded.

How many replicas, retries and nodes a task has, and its timeouts, are needed before any node
is known, so their `${{ }}` may use `variables.*` (after `--set`) and `workflow.name`, nothing
else. Rendering them here keeps the rest of sflow working with plain numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sflow.errors import SpecError
from sflow.schema.base import SpecModel
from sflow.schema.durations import parse_duration
from sflow.schema.expressions import ExpressionError, render_value
from sflow.schema.fieldtypes import as_int, is_expression
from sflow.schema.sections import Variable
from sflow.schema.workflow import WorkflowSpec

_COUNT, _POSITIVE, _DURATION, _INDICES, _POLICY = "count", "positive", "duration", "indices", "policy"


def render_static_fields(spec: WorkflowSpec) -> None:
    """Replace each expression in a plan-shaping field by its value, checked like a literal."""
    base: dict[str, Any] = {"workflow": {"name": spec.workflow.name}, "variables": {}}
    _add_variables(base, spec.variables)
    _add_variables(base, spec.workflow.variables)
    _render(spec.workflow, "timeout", _DURATION, base)
    for task in spec.workflow.tasks:
        if not (task.variables or task.timeout or task.retries or task.replicas or task.resources):
            continue  # nothing to render (most tasks of a big workflow)
        context = base
        if task.variables:
            context = {**base, "variables": dict(base["variables"])}
            _add_variables(context, task.variables)
        _render(task, "timeout", _DURATION, context)
        if task.retries is not None:
            _render(task.retries, "count", _COUNT, context)
            _render(task.retries, "interval", _DURATION, context)
        if task.replicas is not None:
            _render(task.replicas, "count", _POSITIVE, context)
            _render(task.replicas, "policy", _POLICY, context)
        resources = task.resources
        if resources is not None and resources.nodes is not None:
            for name, kind in (("count", _POSITIVE), ("indices", _INDICES), ("exclude", _INDICES)):
                _render(resources.nodes, name, kind, context)
        if resources is not None and resources.gpus is not None:
            _render(resources.gpus, "count", _COUNT, context)
            _render(resources.gpus, "indices", _INDICES, context)


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


def _render(model: SpecModel, field: str, kind: str, context: dict[str, Any]) -> None:
    value = getattr(model, field)
    if not _has_expression(value):
        return
    where, path = model.loc(field), model.path(field)
    try:
        rendered = render_value(value, context, where=where, field=path)
    except ExpressionError as exc:
        hint = "this field is needed before nodes are known: it can use variables.* and workflow.name"
        raise SpecError(f"{exc.message}; {hint}", where=where, field=path) from None
    try:
        setattr(model, field, _checked(rendered, kind))
    except ValueError as exc:
        raise SpecError(f"{exc} (rendered from {value!r})", where=where, field=path) from None


def _checked(value: Any, kind: str) -> Any:
    if kind == _COUNT:
        return as_int(value, 0)
    if kind == _POSITIVE:
        return as_int(value, 1)
    if kind == _DURATION:
        return parse_duration(value)
    if kind == _POLICY:
        if value not in ("parallel", "sequential"):
            raise ValueError(f"policy must be 'parallel' or 'sequential', got {value!r}")
        return value
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
