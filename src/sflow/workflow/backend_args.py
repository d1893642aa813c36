"""What the command line adds to a workflow's backends: extra flags and the node pool.

`-e/--extra-args` go to every Slurm backend's salloc and every docker backend's `docker run`;
`--extra-salloc-args` and `--extra-docker-args` to one kind only, and win over `-e`. Slurm flags
are merged one of each option (the command line wins, `slurm.flags.merge_extra_args`); docker's
are added after the file's, where a later flag wins for docker. `--include-nodes` and
`--exclude-nodes` add to every backend's `include_nodes`/`exclude_nodes`. `--wait-for-gpus`
replaces every docker backend's `wait_for_gpus`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sflow.errors import SpecError
from sflow.schema.models import DockerBackend, SlurmBackend

if TYPE_CHECKING:
    from sflow.schema import WorkflowSpec


def add_extra_args(
    spec: WorkflowSpec, extra: Sequence[str] = (), salloc: Sequence[str] = (), docker: Sequence[str] = ()
) -> None:
    """Merge command-line flags into the backends they are for."""
    for backend in spec.backends.values():
        if isinstance(backend, SlurmBackend) and (extra or salloc):
            from sflow.slurm.flags import merge_extra_args  # here: a local run never loads it

            backend.extra_args = merge_extra_args(backend.extra_args, [*extra, *salloc])
        elif isinstance(backend, DockerBackend) and (extra or docker):
            backend.extra_args = [*backend.extra_args, *extra, *docker]


def set_wait_for_gpus(spec: WorkflowSpec, seconds: int | None) -> None:
    """The command line's `--wait-for-gpus` (or SFLOW_WAIT_FOR_GPUS) over the files' value."""
    if seconds is None:
        return
    for backend in spec.backends.values():
        if isinstance(backend, DockerBackend):
            backend.wait_for_gpus = seconds


def host_list(values: Iterable[str]) -> list[str]:
    """`--include-nodes a,b --include-nodes "c d"` as `[a, b, c, d]` (first of each kept)."""
    hosts = [host for value in values for host in value.replace(",", " ").split()]
    return list(dict.fromkeys(hosts))


def add_node_filters(spec: WorkflowSpec, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
    """Add the command line's hosts to every backend's `include_nodes`/`exclude_nodes`; a host in
    both lists of a backend is a mistake."""
    for name, backend in spec.backends.items():
        backend.include_nodes = list(dict.fromkeys([*backend.include_nodes, *include]))
        backend.exclude_nodes = list(dict.fromkeys([*backend.exclude_nodes, *exclude]))
        both = [host for host in backend.include_nodes if host in backend.exclude_nodes]
        if both:
            raise SpecError(
                f"backend '{name}': {', '.join(both)} both included and excluded "
                "(include_nodes / --include-nodes, exclude_nodes / --exclude-nodes)",
                where=backend.loc(),
                field=backend.path("include_nodes"),
            )
