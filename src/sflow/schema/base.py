"""The model base class: strict fields, and each instance knows the file:line it came from.

Origins live in pydantic's private-attribute storage (`__pydantic_private__`) and are filled in by
`attach_origins` after validation. They are deliberately not declared with `PrivateAttr`: a declared
private attribute makes pydantic call a Python `model_post_init` for every instance (about 4 µs each
on a small machine, 0.4 s for a 100,000-task file), while one walk afterwards costs next to nothing.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict

from sflow.schema.locations import LocMap, join_path


class SpecModel(BaseModel):
    """Base of every workflow model: unknown keys are errors; `loc()`/`path()` say where it came from."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    def __eq__(self, other: object) -> bool:
        """Equal when the values are: where a model came from is not part of its value."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment]

    def loc(self, field: str | None = None) -> str:
        """`file.yaml:LINE` of `field` (or of this object); "" when the object was built in code."""
        private = self.__pydantic_private__
        locs = private.get("locs") if private else None
        if locs is None:
            return ""
        return locs.where() if field is None else locs.where_of(field)

    def path(self, field: str | None = None) -> str:
        """Dotted path of `field` (or of this object) for messages: `workflow.tasks[2].depends_on`."""
        private = self.__pydantic_private__
        own = private.get("path", "") if private else ""
        if private and "index" in private:  # the list's path and an index, left apart by `_attach_list`
            own = private["path"] = f"{own}[{private.pop('index')}]"
        return join_path(own, field)

    def locations(self) -> LocMap | None:
        """The `LocMap` of this object's YAML mapping (None when built in code)."""
        private = self.__pydantic_private__
        return private.get("locs") if private else None


_NESTED: dict[type, frozenset[str]] = {}


def attach_origins(model: SpecModel, locs: LocMap | None, path: str) -> None:
    """Record `locs`/`path` on `model` and, recursively, on every nested model that was given."""
    private = model.__pydantic_private__
    if private is None:
        object.__setattr__(model, "__pydantic_private__", {"locs": locs, "path": path})
    else:
        private["locs"] = locs
        private["path"] = path
        private.pop("index", None)
    for name in _nested(type(model)).intersection(model.__pydantic_fields_set__):
        _attach_value(getattr(model, name), locs.leaf(name) if locs else None, join_path(path, name))


def _nested(cls: type) -> frozenset[str]:
    nested = _NESTED.get(cls)
    if nested is None:
        nested = _NESTED[cls] = _nested_fields(cls)
    return nested


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
    nested = _nested(type(items[0]))
    entries = locs if locs is not None else {}
    setattr_ = object.__setattr__
    for index, item in enumerate(items):
        item_locs = entries.get(index)
        if item_locs.__class__ is not LocMap:
            item_locs = locs.leaf(index) if locs is not None else None
        origin = {"locs": item_locs, "path": path, "index": index}  # formatted only when asked for
        if item.__pydantic_private__ is None:
            setattr_(item, "__pydantic_private__", origin)
        else:
            item.__pydantic_private__.update(origin)
        for name in nested.intersection(item.__pydantic_fields_set__):
            _attach_value(
                getattr(item, name), item_locs.leaf(name) if item_locs else None, f"{path}[{index}].{name}"
            )


def _nested_fields(cls: type[BaseModel]) -> frozenset[str]:
    """Fields whose annotation can hold a model (the only ones the origin walk must visit)."""
    return frozenset(name for name, info in cls.model_fields.items() if _mentions_model(info.annotation))


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return False
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))
