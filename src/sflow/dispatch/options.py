"""Turning a plain `executor_config` mapping into a typed options dataclass.

Every executor declares its options once, as a dataclass; this module rejects unknown keys
(naming the key and listing the valid ones, so a typo such as `partiton` fails loudly) and
checks simple types. No option list is repeated anywhere else.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from sflow.dispatch.errors import DispatchConfigError
from sflow.errors import suggest

T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


def parse_options(cls: type[T], config: Mapping[str, Any] | T | None, where: str) -> T:
    """Build `cls` (a dataclass) from `config`; unknown keys and wrong simple types are errors."""
    if isinstance(config, cls):
        return config
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise DispatchConfigError(f"{where}: expected a mapping of options, got {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in config:
        if key not in fields:
            raise DispatchConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), fields)} (valid keys: {', '.join(sorted(fields))})"
            )
    hints = _hints(cls)
    for key, value in config.items():
        _check_type(where, key, value, hints.get(key))
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise DispatchConfigError(f"{where}: {exc}") from exc


def _hints(cls: type) -> dict[str, Any]:
    """An options class's annotations, resolved once: an executor is built for every flow run."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _check_type(where: str, key: str, value: Any, hint: Any) -> None:
    allowed = _allowed_types(hint)
    if allowed is None or (value is None and type(None) in allowed):
        return
    # True is an int, but never a meaningful count or duration
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        names = " or ".join(sorted({t.__name__ for t in allowed}))
        raise DispatchConfigError(f"{where}: {key!r} must be {names}, got {type(value).__name__} {value!r}")


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    """The runtime types a simple annotation admits, or None when not checked here."""
    if hint in (str, int, bool):
        return (hint,)
    if hint is float:
        return (int, float)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts: list[type] = []
        for arg in typing.get_args(hint):
            sub = (type(None),) if arg is type(None) else _allowed_types(arg)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    if origin in (list, tuple):
        return (list, tuple)
    if origin in (dict, Mapping) or hint is dict:
        return (Mapping,)
    return None


def resolve_callable(spec: Any, where: str) -> Any:
    """A callable given directly or as `"package.module:attribute"` (the form files can hold)."""
    if callable(spec) or spec is None:
        return spec
    if isinstance(spec, str) and ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DispatchConfigError(f"{where}: cannot import {spec!r}: {exc}") from exc
    raise DispatchConfigError(f"{where}: expected a callable or 'module:function', got {spec!r}")
