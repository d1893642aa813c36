"""The YAML data -> models, and each mistake in it as one clear `SpecError` line.

`msgspec.convert` builds a correct document in one pass in C, but stops at the first mistake. A
user fixing a file wants them all, each in our words, so when it refuses, `Reader` goes over the
data field by field: it reports every unknown and missing key, every value of the wrong type and
every failed check, and builds the models from what it accepted. It reads values as the models'
types say and no more leniently than `msgspec.convert` (only numbers as text, and YAML's other
spellings of true and false, are its additions), so a document it accepts is the one `convert`
would have built.

Before either, `reshape` turns the short forms of a few fields into their mapping
(`operator: srun`, `result: {ttft: regex}`, `window: {start: text}`).
"""

from __future__ import annotations

import functools
import typing
from typing import Any, Literal, TypeVar, Union

import msgspec

from sflow.errors import SpecError
from sflow.schema.base import Check, FieldError, SpecModel, defer_origins
from sflow.schema.fieldtypes import describe, text
from sflow.schema.locations import LocMap, PathPart, format_path, where_at
from sflow.schema.monitor import Boundary
from sflow.schema.problems import Problems
from sflow.schema.result import Result
from sflow.schema.suggest import closest, suggest
from sflow.schema.workflow import WorkflowSpec

M = TypeVar("M", bound=SpecModel)

_TRANSLATED = 1000
"""Mistakes beyond this many (one repeated in every task of a huge file) are only counted."""


def validate_spec(data: dict[str, Any], locs: LocMap, problems: Problems) -> WorkflowSpec | None:
    """The validated `WorkflowSpec`, every model knowing its origin (found when first asked); None
    when `problems` got some."""
    reshape(data)
    spec = read(data, WorkflowSpec, locs, problems)
    if spec is not None:
        defer_origins(spec, locs, "")
    return spec


def read(data: Any, model: type[M], locs: LocMap | None, problems: Problems, prefix: str = "") -> M | None:
    """`data` as a `model`; None when `problems` got the mistakes (located with `locs`, the root of
    `data`, and named under `prefix`)."""
    try:
        return msgspec.convert(data, model, strict=False)
    except (msgspec.ValidationError, ValueError, TypeError):
        pass
    reader = Reader(locs, problems, prefix)
    ok, value = reader.model(data, model, [])
    problems.more(reader.count - _TRANSLATED)
    return value if ok and not reader.count else None


def reshape(data: Any) -> None:
    """The short forms, in place: `operator: NAME` and an operator's overrides beside its `name`,
    a task's `result` as a map of regexes, a window's `start`/`end` as the pattern alone."""
    workflow = data.get("workflow") if isinstance(data, dict) else None
    if not isinstance(workflow, dict):
        return
    _reshape_monitor(workflow.get("monitor"))
    tasks = workflow.get("tasks")
    for task in tasks if isinstance(tasks, list) else ():
        if not isinstance(task, dict):
            continue
        if "operator" in task:  # most tasks of a big workflow have none of these three
            task["operator"] = _reshape_operator(task["operator"])
        if "result" in task:
            task["result"] = _short(task["result"], Result.before)
        if "monitor" in task:
            _reshape_monitor(task["monitor"])


def _reshape_operator(operator: Any) -> Any:
    if isinstance(operator, str):
        return {"name": operator}
    if isinstance(operator, dict) and "overrides" not in operator:  # not reshaped yet
        reshaped = {"overrides": {key: value for key, value in operator.items() if key != "name"}}
        if "name" in operator:
            reshaped["name"] = operator["name"]
        return reshaped
    return operator


def _reshape_monitor(monitor: Any) -> None:
    window = monitor.get("window") if isinstance(monitor, dict) else None
    if isinstance(window, dict):
        for end in ("start", "end"):
            if end in window:
                window[end] = _short(window[end], Boundary.before)


class ShortForm(dict[str, Any]):
    """A mapping made from a value's short form: its mistakes are reported where the user wrote it."""


def _short(value: Any, expand: Check) -> Any:
    expanded = expand(value)
    return value if expanded is value else ShortForm(expanded)


class Reader:
    """Reads data as a type, field by field, counting each mistake into `problems`."""

    def __init__(self, locs: LocMap | None, problems: Problems, prefix: str) -> None:
        self.locs = locs
        self.problems = problems
        self.prefix = prefix
        self.count = 0
        self.short: list[PathPart] | None = None  # inside a `ShortForm`: where the user wrote it

    def error(self, path: list[PathPart], text: str, suggested: str | None = None) -> None:
        self.count += 1
        if self.count > _TRANSLATED:
            return
        if self.short is not None:
            path, suggested = self.short, None
        error = SpecError(text, where=where_at(self.locs, path), field=self.field(path) or None)
        instead = self.field([*path[:-1], suggested]) if suggested else None
        self.problems.add(error, suggests=instead)

    def missing(self, path: list[PathPart]) -> None:
        if self.short is not None:
            self.error(path, f"missing required field '{path[-1]}'")
            return
        self.count += 1
        error = SpecError(
            f"missing required field '{path[-1]}'", where=where_at(self.locs, path), field=self.field(path)
        )
        self.problems.add_missing(error)

    def field(self, path: list[PathPart]) -> str:
        field = format_path(path)
        if self.prefix:
            field = f"{self.prefix}.{field}" if field and not field.startswith("[") else self.prefix + field
        return field

    def value(self, data: Any, annotation: Any, path: list[PathPart]) -> tuple[bool, Any]:
        """(True, the value) or (False, None) once its mistakes are reported."""
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return self.annotated(data, annotation, path)
        if origin is Union or type(annotation).__name__ == "UnionType":
            return self.union(data, typing.get_args(annotation), path)
        if isinstance(annotation, type) and issubclass(annotation, SpecModel):
            return self.model(data, annotation, path)
        if origin is list:
            return self.sequence(data, typing.get_args(annotation)[0], path)
        if origin is dict:
            return self.mapping(data, typing.get_args(annotation)[1], path)
        if origin is Literal:
            choices = typing.get_args(annotation)
            if data in choices:
                return True, data
            return self.fail(path, f"must be one of {_choices(choices)}, got {describe(data)}")
        if annotation is Any:
            return True, data
        reader = _SCALARS.get(annotation)
        if reader is None:
            raise TypeError(f"no reader for {annotation!r}")
        try:
            return True, reader(data)
        except ValueError as exc:
            return self.fail(path, str(exc))

    def fail(self, path: list[PathPart], text: str) -> tuple[bool, Any]:
        self.error(path, text)
        return False, None

    def annotated(self, data: Any, annotation: Any, path: list[PathPart]) -> tuple[bool, Any]:
        check = _check(annotation)
        if check is not None:
            try:
                return True, check(data)
            except ValueError as exc:
                return self.fail(path, str(exc))
        ok, value = self.value(data, annotation.__origin__, path)
        if not ok:
            return ok, value
        for meta in annotation.__metadata__:
            if isinstance(meta, msgspec.Meta):
                text = _bound_mistake(meta, value)
                if text:
                    return self.fail(path, text)
        return True, value

    def union(self, data: Any, options: tuple[Any, ...], path: list[PathPart]) -> tuple[bool, Any]:
        if data is None and type(None) in options:
            return True, None
        options = tuple(o for o in options if o is not type(None))
        models = [o for o in options if isinstance(o, type) and issubclass(o, SpecModel)]
        if len(models) > 1:
            return self.tagged(data, models, path)
        if len(options) == 1:
            return self.value(data, options[0], path)
        for option in options[1:]:  # the first that takes the value without a mistake
            try:
                return True, msgspec.convert(data, option, strict=False)
            except (msgspec.ValidationError, ValueError, TypeError):
                continue
        return self.value(data, options[0], path)

    def tagged(self, data: Any, models: list[type[SpecModel]], path: list[PathPart]) -> tuple[bool, Any]:
        """A model chosen by the `type:` of the mapping."""
        if not isinstance(data, dict):
            return self.fail(path, f"expected a mapping, got {describe(data)}")
        tags = {str(m.__struct_config__.tag): m for m in models}
        if "type" not in data:
            return self.fail(path, "missing 'type' field")
        tag = str(data["type"])
        if tag not in tags:
            known = list(tags)
            return self.fail(
                path, f"unknown type '{tag}' (expected one of: {', '.join(known)}){suggest(tag, known)}"
            )
        return self.model({k: v for k, v in data.items() if k != "type"}, tags[tag], path)

    def model(self, data: Any, model: type[M], path: list[PathPart]) -> tuple[bool, M | None]:
        if isinstance(data, ShortForm) and self.short is None:
            self.short = path
            try:
                return self.model(data, model, path)
            finally:
                self.short = None
        if not isinstance(data, dict):
            return self.fail(path, f"expected a mapping, got {describe(data)}")
        fields = _fields(model)
        hints = _hints(model)
        before = self.count
        values: dict[str, Any] = {}
        for key, info in fields.items():  # in declaration order, then the unknown keys
            if key in data:
                ok, value = self.value(data[key], hints[info.name], [*path, key])
                if ok:
                    values[info.name] = value
            elif info.required:
                self.missing([*path, key])
        for key in data:
            if key not in fields:
                names = list(fields)
                suggested = closest(str(key), names)
                self.error([*path, key], f"unknown field '{key}'{suggest(str(key), names)}", suggested)
        if self.count > before:
            return False, None
        try:
            return True, model(**values)
        except FieldError as exc:
            return self.fail([*path, exc.field], str(exc))
        except (ValueError, TypeError) as exc:
            return self.fail(path, str(exc))

    def sequence(self, data: Any, item: Any, path: list[PathPart]) -> tuple[bool, Any]:
        if not isinstance(data, list):
            return self.fail(path, f"expected a list, got {describe(data)}")
        out = []
        ok = True
        for index, value in enumerate(data):
            good, read = self.value(value, item, [*path, index])
            ok = ok and good
            out.append(read)
        return ok, out if ok else None

    def mapping(self, data: Any, item: Any, path: list[PathPart]) -> tuple[bool, Any]:
        if not isinstance(data, dict):
            return self.fail(path, f"expected a mapping, got {describe(data)}")
        out = {}
        ok = True
        for key, value in data.items():
            good, read = self.value(value, item, [*path, key])
            ok = ok and good
            out[str(key)] = read
        return ok, out if ok else None


class _Field:
    __slots__ = ("name", "required")

    def __init__(self, name: str, required: bool) -> None:
        self.name = name
        self.required = required


@functools.cache
def _fields(model: type[SpecModel]) -> dict[str, _Field]:
    """A model's fields by the name YAML uses."""
    return {f.encode_name: _Field(f.name, f.required) for f in msgspec.structs.fields(model)}


@functools.cache
def _hints(model: type[SpecModel]) -> dict[str, Any]:
    return typing.get_type_hints(model, include_extras=True)


def _check(annotation: Any) -> Check | None:
    for meta in annotation.__metadata__:
        if isinstance(meta, msgspec.Meta) and meta.extra and "check" in meta.extra:
            function: Check = meta.extra["check"]
            return function
    return None


def _bound_mistake(meta: msgspec.Meta, value: Any) -> str | None:
    if meta.min_length is not None and len(value) < meta.min_length:
        if isinstance(value, str):
            plural = "s" if meta.min_length > 1 else ""
            return f"String should have at least {meta.min_length} character{plural}"
        return "must not be empty"
    for bound, words, broken in (
        (meta.ge, "greater than or equal to", lambda b: value < b),
        (meta.gt, "greater than", lambda b: value <= b),
        (meta.le, "less than or equal to", lambda b: value > b),
        (meta.lt, "less than", lambda b: value >= b),
    ):
        if bound is not None and broken(bound):
            return f"input should be {words} {_number(bound)}, got {value!r}"
    return None


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _choices(choices: tuple[Any, ...]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {describe(value)}")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {describe(value)}")
    try:
        result = msgspec.convert(value, int, strict=False)
    except (msgspec.ValidationError, ValueError):
        raise ValueError(f"expected an integer, got {describe(value)}") from None
    return int(result)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {describe(value)}")
    try:
        return float(msgspec.convert(value, float, strict=False))
    except (msgspec.ValidationError, ValueError):
        raise ValueError(f"expected a number, got {describe(value)}") from None


_SCALARS: dict[Any, Check] = {str: text, bool: _boolean, int: _integer, float: _float}


def validated(data: Any, model: type[M], locs: LocMap | None, prefix: str) -> M:
    """`data` as a `model`, or the `SpecError` (or `SpecErrors`) of its mistakes."""
    problems = Problems()
    value = read(data, model, locs, problems, prefix)
    problems.raise_if_any()
    assert value is not None
    return value
