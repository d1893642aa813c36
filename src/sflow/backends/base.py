"""The backend contract: give the run an allocation of named nodes, and give it back.

A backend is one module implementing `Backend` and registering its `type` name;
adding one touches nothing else.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from sflow.backends.placement import Node
from sflow.slurm.journal import SlurmJournal


class AllocationWatch(abc.ABC):
    """Tells the run when its allocation ends before the run does (cancelled, a node failed, its
    time limit), and why: the run then stops at once with that reason instead of retrying tasks
    on a job that is gone. `on_end` is called once, with the reason."""

    def __init__(self) -> None:
        self.ended: str | None = None
        self.on_end: Callable[[str], None] | None = None

    @abc.abstractmethod
    async def check(self) -> str | None:
        """Ask now (a step just failed): why the allocation is gone, or None while it holds."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Keep watching until cancelled or the allocation ends."""

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            if self.on_end is not None:
                self.on_end(reason)


JOB_PLACEHOLDER = "<slurm-job-id>"  # the id of a Slurm job not granted yet (a dry run)


class Allocation(msgspec.Struct):
    """Nodes a backend holds for the run. `reused` means we did not create it and must not release it.

    `watch` notices the allocation ending under the run; `journal` records the Slurm ids work in
    it starts (steps), so a run killed outright can be cleaned up (`sflow cancel`).
    """

    backend: str
    nodes: list[Node]
    job_id: str | None = None
    reused: bool = False
    info: dict[str, Any] = msgspec.field(default_factory=dict)
    watch: AllocationWatch | None = None
    journal: SlurmJournal | None = None


class Backend(abc.ABC):
    """One configured backend of a workflow (`backends:` entry)."""

    type_name: ClassVar[str]
    default_operator: ClassVar[str]

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.journal = SlurmJournal()  # the run's, when it has a run directory
        self.notice: Callable[[str], None] = lambda message: None  # what the user should hear now
        self.run_id = ""  # the run this backend serves: labels what it creates, set before allocate

    @abc.abstractmethod
    def planned_allocation(self) -> Allocation:
        """The allocation as far as it is known without asking anyone (for --dry-run and checks)."""

    @abc.abstractmethod
    async def allocate(self) -> Allocation:
        """Acquire (or discover) the allocation; raises BackendError with a clear message."""

    async def release(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Give the allocation back (never one that was reused)."""

    def default_max_concurrent(self) -> int | None:
        """How many tasks may run at once when the workflow does not say (None: no limit)."""
        return None


_REGISTRY: dict[str, Callable[[str, Any], Backend]] = {}


def register_backend(type_name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend available under its `type:` name."""

    def deco(cls: type[Backend]) -> type[Backend]:
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


# Built-in backends are imported on first use, keeping `import sflow` light.
_BUILTIN = {
    "local": "sflow.backends.local",
    "slurm": "sflow.backends.slurm",
    "docker": "sflow.backends.docker",
}


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
