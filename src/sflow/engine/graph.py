"""A DAG of named nodes: topological order and cycle detection without recursion.

Kept free of YAML and processes so it can be tested alone and scale to 100k nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from sflow.errors import PlanError


class CycleError(PlanError):
    """The graph has a cycle; `cycle` lists its nodes in order, first repeated at the end.

    The message shows a long cycle by its ends (`SHOWN` nodes at most) and says how many tasks
    it has, so that a cycle through thousands of tasks is still one readable line."""

    SHOWN = 10

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(self._describe())

    def _describe(self) -> str:
        size = len(self.cycle) - 1
        if len(self.cycle) <= self.SHOWN + 1:
            return "dependency cycle: " + " -> ".join(self.cycle)
        half = self.SHOWN // 2
        head, tail = self.cycle[:half], self.cycle[-half:]
        skipped = len(self.cycle) - len(head) - len(tail)
        shown = " -> ".join([*head, f"... ({skipped} more) ...", *tail])
        return f"dependency cycle through {size} tasks: {shown}"


class Graph:
    """Nodes and their dependencies (edges point from a node to what it depends on)."""

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        own: dict[str, tuple[str, ...]] = {}
        dependents: dict[str, list[str]] = {name: [] for name in deps}
        for name, ds in deps.items():
            if ds.__class__ is not tuple or len(ds) > 1:
                ds = tuple(dict.fromkeys(ds))
            own[name] = ds
            for dep in ds:
                children = dependents.get(dep)
                if children is None:
                    raise PlanError(f"task '{name}' depends on unknown task '{dep}'")
                children.append(name)
        self.deps = own
        self.dependents = dependents

    def __len__(self) -> int:
        return len(self.deps)

    def order(self) -> list[str]:
        """Topological order (dependencies first, stable by insertion); raises CycleError."""
        return topological_order(self.deps)

    def descendants(self, name: str) -> list[str]:
        """Every node that depends on `name`, directly or not (breadth first)."""
        seen: set[str] = set()
        out: list[str] = []
        queue = deque(self.dependents[name])
        while queue:
            child = queue.popleft()
            if child not in seen:
                seen.add(child)
                out.append(child)
                queue.extend(self.dependents[child])
        return out


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """The order of `Graph(deps).order()`, without building the graph: what a plan needs.

    Kahn's order, first in first out: the nodes without dependencies in insertion order, then each
    node's dependents, in insertion order, as their last dependency comes out. A node with a single
    dependency (most of them in a generated workflow) comes out right after it, so only nodes with
    several dependencies count what they still wait for. Raises PlanError for a dependency that is
    not a node, CycleError for a cycle.
    """
    out: list[str] = []  # also the queue: the loop below reaches what it appends
    waiting: dict[str, int] = {}  # nodes with several dependencies: how many have not come out
    dependents: dict[str, list[str]] = {}
    for name, given in deps.items():
        ds = given if type(given) is tuple and len(given) < 2 else tuple(dict.fromkeys(given))
        if not ds:
            out.append(name)
            continue
        if len(ds) > 1:
            waiting[name] = len(ds)
        for dep in ds:
            children = dependents.get(dep)
            if children is None:
                dependents[dep] = [name]
            else:
                children.append(name)
    if not deps.keys() >= dependents.keys():
        _unknown(deps)
    get = dependents.get
    if not waiting:
        for name in out:
            children = get(name)
            if children is not None:
                out.extend(children)
    else:
        for name in out:
            for child in get(name, ()):
                left = waiting.get(child, 1)
                if left == 1:
                    out.append(child)
                else:
                    waiting[child] = left - 1
    if len(out) != len(deps):
        raise CycleError(_find_cycle(deps, deps.keys() - set(out)))
    return out


def _unknown(deps: Mapping[str, Iterable[str]]) -> None:
    """Raise the PlanError of the first dependency that is not a node."""
    for name, ds in deps.items():
        for dep in ds:
            if dep not in deps:
                raise PlanError(f"task '{name}' depends on unknown task '{dep}'")


def _find_cycle(deps: Mapping[str, Iterable[str]], candidates: set[str]) -> list[str]:
    """Walk dependency edges inside the unsorted rest until a node repeats."""
    start = min(candidates)
    seen: dict[str, int] = {}
    path: list[str] = []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d in candidates)
    cycle = path[seen[node] :]
    cycle.reverse()  # show "a -> b" as "a runs before b"
    return [*cycle, cycle[0]]
