"""The local backend: synthetic nodes `localhost`, `localhost-1`, ... all at 127.0.0.1."""

from __future__ import annotations

import os
from typing import Any

from sflow.backends.base import Allocation, Backend, register_backend
from sflow.backends.placement import Node


@register_backend("local")
class LocalBackend(Backend):
    default_operator = "bash"

    def planned_allocation(self) -> Allocation:
        return Allocation(backend=self.name, nodes=synthetic_nodes(self.config))

    async def allocate(self) -> Allocation:
        ignored_node_filters(self)
        return self.planned_allocation()

    def default_max_concurrent(self) -> int:
        """Twice the CPUs this process may use, at least 8: `replicas: {count: 10000}` must not
        start 10,000 processes at once, and tasks that mostly wait still overlap."""
        return max(8, 2 * usable_cpus())


def usable_cpus() -> int:
    """CPUs this process may run on (a Slurm job's or a container's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def synthetic_nodes(config: Any) -> list[Node]:
    """This machine as `nodes` named nodes (`localhost`, `localhost-1`, …) of `gpus_per_node` each."""
    count = int(_field(config, "nodes", 1) or 1)
    gpus = int(_field(config, "gpus_per_node", 0) or 0)
    return [
        Node(name="localhost" if i == 0 else f"localhost-{i}", ip_address="127.0.0.1", index=i, num_gpus=gpus)
        for i in range(count)
    ]


def _field(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, None) if not isinstance(config, dict) else config.get(name)
    return default if value is None else value


def ignored_node_filters(backend: Backend) -> None:
    """Say that `include_nodes`/`exclude_nodes` mean nothing for nodes that are all this machine."""
    if _field(backend.config, "include_nodes", None) or _field(backend.config, "exclude_nodes", None):
        backend.notice(
            f"backend '{backend.name}': include_nodes/exclude_nodes ignored (its nodes are this machine)"
        )
