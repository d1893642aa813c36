"""The docker backend: synthetic nodes on this machine, or a pool of Docker hosts.

Without `hosts`, nodes are `localhost`, `localhost-1`, ... (address 127.0.0.1) and containers run
on the daemon the docker client finds by itself (DOCKER_HOST, the current context). With `hosts`,
each node is one daemon, reached by `docker_host` (e.g. ssh://machine) or a docker `context`.
Releasing the allocation removes every container still labelled with the run's id.
"""

from __future__ import annotations

from typing import Any

from sflow.backends.base import Allocation, Backend, register_backend
from sflow.backends.local import ignored_node_filters, synthetic_nodes
from sflow.backends.placement import Node
from sflow.errors import BackendError
from sflow.proc.container import Daemon, DockerCommandError, docker, remove_labelled

DAEMONS = "docker_daemons"  # Allocation.info key: node name -> Daemon


@register_backend("docker")
class DockerBackend(Backend):
    default_operator = "docker_run"

    def planned_allocation(self) -> Allocation:
        hosts = pool(self.config)
        if getattr(self.config, "hosts", None):
            nodes = [
                Node(name=h.name, ip_address=h.ip_address, index=i, num_gpus=int(h.gpus_per_node or 0))
                for i, h in enumerate(hosts)
            ]
            daemons = {h.name: Daemon(h.docker_host, h.context) for h in hosts}
        else:
            nodes = synthetic_nodes(self.config)
            daemons = {n.name: Daemon() for n in nodes}
        return Allocation(backend=self.name, nodes=nodes, info={DAEMONS: daemons, "config": self.config})

    async def allocate(self) -> Allocation:
        """The planned nodes, once every daemon has answered (a clear error instead of N task failures)."""
        if not getattr(self.config, "hosts", None):
            ignored_node_filters(self)
        allocation = self.planned_allocation()
        if not allocation.nodes:
            raise BackendError(f"backend '{self.name}': include_nodes/exclude_nodes leave no host")
        for node, daemon in allocation.info[DAEMONS].items():
            try:
                await docker(daemon, "version", "--format", "{{.Server.Version}}")
            except DockerCommandError as exc:
                raise BackendError(
                    f"backend '{self.name}': node '{node}': no Docker daemon answers: {exc}"
                ) from None
        self._allocation = allocation
        return allocation

    async def release(self) -> None:
        """Remove whatever container of this run a daemon still has (a killed client leaves one)."""
        allocation: Allocation | None = getattr(self, "_allocation", None)
        if allocation is None or not self.run_id:
            return
        for daemon in dict.fromkeys(allocation.info[DAEMONS].values()):
            await remove_labelled(daemon, self.run_id)


def pool(config: Any) -> list[Any]:
    """The backend's `hosts`, narrowed by `include_nodes` and `exclude_nodes` (by host name)."""
    hosts = list(getattr(config, "hosts", None) or ())
    include = set(getattr(config, "include_nodes", None) or ())
    exclude = set(getattr(config, "exclude_nodes", None) or ())
    return [h for h in hosts if (not include or h.name in include) and h.name not in exclude]


def backend_config(allocation: Allocation) -> Any:
    """The docker backend's settings an operator falls back on (None for another backend)."""
    return allocation.info.get("config")
