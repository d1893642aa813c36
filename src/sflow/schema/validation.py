"""Run pydantic over the document and turn each of its complaints into one clear `SpecError` line."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from sflow.errors import SpecError
from sflow.schema.base import attach_origins
from sflow.schema.fieldtypes import PATTERN_HINTS, describe
from sflow.schema.locations import LocMap, PathPart, format_path, where_at
from sflow.schema.problems import Problems
from sflow.schema.suggest import closest, suggest
from sflow.schema.workflow import WorkflowSpec

_EXPECTED = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
}


def validate_spec(data: dict[str, Any], locs: LocMap, problems: Problems) -> WorkflowSpec | None:
    """The validated `WorkflowSpec`, every model knowing its origin; None when `problems` got some."""
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        report(exc, data, locs, WorkflowSpec, problems)
        return None
    attach_origins(spec, locs, "")
    return spec


def report(
    exc: ValidationError,
    data: Any,
    locs: LocMap | None,
    model: type[BaseModel],
    problems: Problems,
    prefix: str = "",
) -> None:
    """Add each error of `exc` to `problems` as a `SpecError` located with `locs` (the root of `data`)."""
    errors = exc.errors(include_url=False)
    for error in errors[:_TRANSLATED]:
        path = data_path(error["loc"], data, error["type"] == "missing")
        text, suggested = message(error, path, data, model)
        spec_error = SpecError(text, where=where_at(locs, path), field=_field(prefix, path) or None)
        if error["type"] == "missing":
            problems.add_missing(spec_error)
        else:
            instead = _field(prefix, [*path[:-1], suggested]) if suggested else None
            problems.add(spec_error, suggests=instead)
    problems.more(len(errors) - _TRANSLATED)


def _field(prefix: str, path: list[PathPart]) -> str:
    field = format_path(path)
    if prefix:
        field = f"{prefix}.{field}" if field and not field.startswith("[") else prefix + field
    return field


_TRANSLATED = 1000
"""Errors beyond this many (a mistake repeated in every task of a huge file) are only counted."""


def data_path(loc: tuple[Any, ...], data: Any, missing: bool) -> list[PathPart]:
    """The error location as keys of the data (pydantic adds union tags like 'slurm' we must skip)."""
    path: list[PathPart] = []
    node = data
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
        elif missing and i == len(loc) - 1:
            pass
        else:
            continue
        path.append(part)
    return path


def message(error: Any, path: list[PathPart], data: Any, root: type[BaseModel]) -> tuple[str, str | None]:
    """The text of one pydantic error, and the field it suggests instead of an unknown one."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    last = path[-1] if path else ""
    if kind == "extra_forbidden":
        model = model_at(root, path[:-1], data)
        fields = list(model.model_fields) if model is not None else []
        suggested = closest(str(last), fields)
        return f"unknown field '{last}'{suggest(str(last), fields)}", suggested
    return _text(kind, ctx, value, last, error), None


def _text(kind: str, ctx: dict[str, Any], value: Any, last: PathPart, error: Any) -> str:
    if kind == "missing":
        return f"missing required field '{last}'"
    if kind == "union_tag_invalid":
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag"))
        return f"unknown type '{tag}' (expected one of: {', '.join(expected)}){suggest(tag, expected)}"
    if kind == "union_tag_not_found":
        return f"missing '{ctx.get('discriminator', 'type').strip(chr(39))}' field"
    if kind == "string_pattern_mismatch" and value == "":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is {len(value)} characters long, at most {ctx.get('max_length')}"
    if kind == "string_pattern_mismatch":
        return f"invalid name {value!r}: {PATTERN_HINTS.get(str(ctx.get('pattern')), 'invalid characters')}"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {describe(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{error['msg'].lower()}, got {value!r}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(value)}"
    return str(error["msg"])


def model_at(root: type[BaseModel], path: list[PathPart], data: Any) -> type[BaseModel] | None:
    """The model class that validates the data found at `path` (for 'did you mean' field names)."""
    annotation: Any = root
    node = data
    for part in path:
        model = _as_model(annotation, node)
        if model is not None:
            info = model.model_fields.get(str(part))
            if info is None:
                return None
            annotation = info.annotation
        else:
            annotation = _item_type(annotation)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return _as_model(annotation, node)


def _as_model(annotation: Any, node: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _as_model(typing.get_args(annotation)[0], node)
    if origin is Union or isinstance(annotation, types.UnionType):
        candidates = [m for a in typing.get_args(annotation) if (m := _as_model(a, node)) is not None]
        if len(candidates) == 1:
            return candidates[0]
        tag = node.get("type") if isinstance(node, dict) else None
        return next(
            (m for m in candidates if "type" in m.model_fields and m.model_fields["type"].default == tag),
            None,
        )
    return None


def _item_type(annotation: Any) -> Any:
    """X of `list[X]`, `dict[str, X]`, `X | None`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _item_type(args[0])
    if origin is Union or isinstance(annotation, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _item_type(inner[0]) if len(inner) == 1 else None
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
