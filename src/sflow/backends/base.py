"""The backend contract: give the run an allocation of named nodes, and give it back.

A backend is one module implementing `Backend` and registering its `type` name;
adding one touches nothing else.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sflow.backends.placement import Node


@dataclass
class Allocation:
    """Nodes a backend holds for the run. `reused` means we did not create it and must not release it."""

    backend: str
    nodes: list[Node]
    job_id: str | None = None
    reused: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """One configured backend of a workflow (`backends:` entry)."""

    type_name: ClassVar[str]
    default_operator: ClassVar[str]

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @abc.abstractmethod
    def planned_allocation(self) -> Allocation:
        """The allocation as far as it is known without asking anyone (for --dry-run and checks)."""

    @abc.abstractmethod
    async def allocate(self) -> Allocation:
        """Acquire (or discover) the allocation; raises BackendError with a clear message."""

    async def release(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Give the allocation back (never one that was reused)."""


_REGISTRY: dict[str, Callable[[str, Any], Backend]] = {}


def register_backend(type_name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend available under its `type:` name."""

    def deco(cls: type[Backend]) -> type[Backend]:
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


# Built-in backends are imported on first use, keeping `import sflow` light.
_BUILTIN = {"local": "sflow.backends.local", "slurm": "sflow.backends.slurm"}


def create_backend(type_name: str, name: str, config: Any) -> Backend:
    """An instance of the backend registered as `type_name`."""
    if type_name not in _REGISTRY and type_name in _BUILTIN:
        importlib.import_module(_BUILTIN[type_name])
    try:
        factory = _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted({*_REGISTRY, *_BUILTIN}))
        raise ValueError(f"unknown backend type '{type_name}' (known: {known})") from None
    return factory(name, config)
