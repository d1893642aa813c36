"""The model base class: strict fields, and each instance knows the file:line it came from.

Models are `msgspec.Struct`s: a class costs microseconds to define and `msgspec.convert` builds a
whole workflow from the YAML data in C. A field whose value needs more than a type (a number that
may still be a `${{ }}` expression, a duration, a name) carries its check in its annotation
(`Annotated[Any, check(fn)]`): `__post_init__` runs the checks of the fields that were given, then
`validate()`, the checks between fields. Origins (`loc()`, `path()`) live in the instance's
`__dict__` and are filled in by `attach_origins`, in one walk of the tree. A workflow that loads
without a mistake asks for none (100,000 tasks cost 0.4 s to walk), so `defer_origins` leaves the
walk to the first model that is asked for its origin.
"""

from __future__ import annotations

import _thread
import typing
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.schema.locations import LocMap, join_path

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls  # only type checkers read it


Check = Callable[[Any], Any]


def check(function: Check) -> msgspec.Meta:
    """Annotation metadata: `function` checks (and may convert) the field's value."""
    return msgspec.Meta(extra={"check": function})


class FieldError(ValueError):
    """A check between fields that blames one of them: the message is located at `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _KeywordFields(msgspec.StructMeta):
    """Every model's fields are keyword-only, so a required field may follow one with a default."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **config: Any) -> Any:
        config.setdefault("kw_only", True)
        return super().__new__(mcls, name, bases, namespace, **config)


@dataclass_transform(kw_only_default=True, field_specifiers=(msgspec.field,))
class SpecModel(msgspec.Struct, metaclass=_KeywordFields, forbid_unknown_fields=True, dict=True):
    """Base of every workflow model: unknown keys are errors; `loc()`/`path()` say where it came from."""

    def __post_init__(self) -> None:
        checks = _CHECKS.get(self.__class__)
        if checks is None:
            checks = _learn(self.__class__)[0]
        for name, function, default in checks:
            value = getattr(self, name)
            if value is not None and value is not default:  # a default is not checked
                checked = function(value)
                if checked is not value:  # most checks accept the value as it is
                    setattr(self, name, checked)
        if self.__class__.validate is not SpecModel.validate:  # a task, made 100,000 times, has none
            self.validate()

    def validate(self) -> None:
        """Checks between fields (a subclass's); raise ValueError naming the mistake."""

    def loc(self, field: str | None = None) -> str:
        """`file.yaml:LINE` of `field` (or of this object); "" when the object was built in code."""
        locs = self.locations()
        if locs is None:
            return ""
        return locs.where() if field is None else locs.where_of(field)

    def path(self, field: str | None = None) -> str:
        """Dotted path of `field` (or of this object) for messages: `workflow.tasks[2].depends_on`."""
        origin = self.__dict__
        if _DEFERRED and "_path" not in origin:
            settle_origins()
        own = origin.get("_path", "")
        if "_index" in origin:  # the list's path and an index, left apart by `_attach_list`
            own = origin["_path"] = f"{own}[{origin.pop('_index')}]"
        return join_path(own, field)

    def locations(self) -> LocMap | None:
        """The `LocMap` of this object's YAML mapping (None when built in code)."""
        origin = self.__dict__
        if _DEFERRED and "_locs" not in origin:
            settle_origins()
        return origin.get("_locs")


def dump(model: SpecModel) -> dict[str, Any]:
    """The fields of `model` that differ from their defaults, as YAML data (`type` of a tagged
    model left out): what re-validating it with changes needs."""
    data = msgspec.to_builtins(model)
    tag_field = model.__struct_config__.tag_field
    if tag_field is not None:
        data.pop(tag_field, None)
    defaults = {f.encode_name: f for f in msgspec.structs.fields(model)}
    return {
        key: value
        for key, value in data.items()
        if not _is_default(defaults[key], getattr(model, defaults[key].name))
    }


def as_json(model: SpecModel, exclude: Collection[str] = (), drop_none: bool = False) -> dict[str, Any]:
    """Every field of `model` as JSON-ready data (a tagged model's `type` included); without the
    fields named in `exclude`, and with `drop_none`, without any field (at any depth) that is None."""
    data: dict[str, Any] = msgspec.to_builtins(model)
    for name in exclude:
        data.pop(name, None)
    return _without_none(data) if drop_none else data


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _is_default(info: Any, value: Any) -> bool:
    if info.default is not msgspec.NODEFAULT:
        return bool(value == info.default)
    if info.default_factory is not msgspec.NODEFAULT:
        return bool(value == info.default_factory())
    return False


_CHECKS: dict[type, tuple[tuple[str, Check, Any], ...]] = {}
_NESTED: dict[type, frozenset[str]] = {}


def nested_fields(cls: type) -> frozenset[str]:
    """Fields whose annotation can hold a model (the only ones the origin walk must visit)."""
    return _NESTED[cls] if cls in _NESTED else _learn(cls)[1]


def _learn(cls: type) -> tuple[tuple[tuple[str, Check, Any], ...], frozenset[str]]:
    """A class's field checks and nested fields, read from its annotations on first use (as
    msgspec resolves them, `Annotated` checks kept)."""
    checks = []
    nested = []
    for info in msgspec.structs.fields(cls):
        name, annotation = info.name, info.type
        function = _check_of(annotation)
        if function is not None:
            checks.append((name, function, info.default))
        if _mentions_model(annotation):
            nested.append(name)
    _CHECKS[cls], _NESTED[cls] = tuple(checks), frozenset(nested)
    return _CHECKS[cls], _NESTED[cls]


def _check_of(annotation: Any) -> Check | None:
    for arg in _union_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            for meta in arg.__metadata__:
                if isinstance(meta, msgspec.Meta) and meta.extra and "check" in meta.extra:
                    function: Check = meta.extra["check"]
                    return function
    return None


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        return typing.get_args(annotation)
    return (annotation,)


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SpecModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


_DEFERRED: list[tuple[SpecModel, LocMap | None, str]] = []
"""The tree whose origins `defer_origins` left to `settle_origins` (one at most)."""
_SETTLING = _thread.allocate_lock()


def defer_origins(model: SpecModel, locs: LocMap | None, path: str) -> None:
    """`attach_origins(model, locs, path)` once any model first asks for its origin.

    The tree is held until then, so its models keep their origins however long they outlive it.
    A tree deferred before is settled now: one whole tree at most is held for nothing. Code that
    puts a model built in code into the tree (which has no origin) settles the tree first."""
    with _SETTLING:
        _settle()
        _DEFERRED.append((model, locs, path))


def settle_origins() -> None:
    """Attach the origins `defer_origins` left for later (a thread asking meanwhile waits)."""
    with _SETTLING:
        _settle()


def _settle() -> None:
    for deferred in _DEFERRED:
        attach_origins(*deferred)
    _DEFERRED.clear()


def attach_origins(model: SpecModel, locs: LocMap | None, path: str) -> None:
    """Record `locs`/`path` on `model` and, recursively, on every nested model."""
    origin = model.__dict__
    origin["_locs"] = locs
    origin["_path"] = path
    origin.pop("_index", None)
    for name in nested_fields(model.__class__):
        value = getattr(model, name)
        if value is not None:
            _attach_value(value, locs.leaf(name) if locs else None, join_path(path, name))


def _attach_value(value: Any, locs: LocMap | None, path: str) -> None:
    if isinstance(value, SpecModel):
        attach_origins(value, locs, path)
    elif isinstance(value, list):
        _attach_list(value, locs, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, SpecModel):
                attach_origins(item, locs.leaf(key) if locs else None, join_path(path, key))


def _attach_list(items: list[Any], locs: LocMap | None, path: str) -> None:
    """`attach_origins` for each model of a list, inlined: this runs once per task of the workflow."""
    if not items or not isinstance(items[0], SpecModel):
        return
    nested = nested_fields(items[0].__class__)
    entries = locs if locs is not None else {}
    for index, item in enumerate(items):
        item_locs = entries.get(index)
        if item_locs.__class__ is not LocMap:
            item_locs = locs.leaf(index) if locs is not None else None
        origin = item.__dict__
        origin["_locs"] = item_locs
        origin["_path"] = path
        origin["_index"] = index  # formatted only when asked for
        for name in nested:
            value = getattr(item, name)
            if value:  # None, or an empty list or dict: no model to visit
                _attach_value(value, item_locs.leaf(name) if item_locs else None, f"{path}[{index}].{name}")
