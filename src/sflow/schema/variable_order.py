"""The order in which a scope's variables are resolved: each after the ones its value reads.

A variable may use one declared after it (`A: ${{ variables.B }}-x` before `B`), in the same
file or in a later one: values are resolved in dependency order, declaration order otherwise. A
value that reads its own name reads the outer scope's variable of that name (a task's
`N: ${{ variables.N + 1 }}`), so it is no dependency. A real cycle is an input error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sflow.errors import SpecError
from sflow.schema.expressions import needs_rendering, reads, split_expressions


class VariableCycle(SpecError):
    """Variables whose values read each other in a ring; `cycle` lists them, the first repeated."""

    def __init__(self, cycle: list[str], where: str | None, field: str | None) -> None:
        self.cycle = cycle
        super().__init__(f"variables read each other in a cycle: {' -> '.join(cycle)}", where, field)


def read_names(value: Any, names: Mapping[str, Any]) -> list[str] | None:
    """The names of `names` that `value` reads as `variables.<name>`; None when it may read any
    (a whole template, or `variables` used other than by constant key)."""
    found: list[str] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str) and needs_rendering(item):
            split = split_expressions(item)
            if split is None:
                return None
            for source in split[1]:
                try:
                    keys = reads(source).keys.get("variables", frozenset())
                except Exception:
                    return None  # a syntax error: reported where expressions are checked
                if keys is None:
                    return None
                found.extend(k for k in keys if k in names)
    return found


def resolution_order(variables: Mapping[str, Any]) -> list[str]:
    """Names of `variables` (name -> an object with `.value`), each after those its value reads.

    Declaration order is kept wherever the values allow it. Raises `VariableCycle` on a cycle.
    """
    names = list(variables)
    if len(names) < 2:
        return names
    position = {name: i for i, name in enumerate(names)}
    deps: dict[str, list[str]] = {}
    for name in names:
        read = read_names(variables[name].value, variables)
        if read is None:  # may read anything: what was declared before it, as it always could
            read = names[: position[name]]
        deps[name] = sorted({n for n in read if n != name}, key=position.__getitem__)
    if all(position[d] < position[n] for n, ds in deps.items() for d in ds):
        return names  # nothing reads ahead: the common case
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: placed
    for name in names:
        _visit(name, deps, state, order, [], variables)
    return order


def _visit(
    name: str,
    deps: Mapping[str, list[str]],
    state: dict[str, int],
    order: list[str],
    path: list[str],
    variables: Mapping[str, Any],
) -> None:
    if state.get(name) == 2:
        return
    if state.get(name) == 1:
        cycle = [*path[path.index(name) :], name]
        first = variables[cycle[0]]
        where = first.loc("value") if hasattr(first, "loc") else None
        field = first.path("value") if hasattr(first, "path") else None
        raise VariableCycle(cycle, where, field)
    state[name] = 1
    path.append(name)
    for dep in deps[name]:
        _visit(dep, deps, state, order, path, variables)
    path.pop()
    state[name] = 2
    order.append(name)


def ordered(variables: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """`(name, variable)` pairs in resolution order (declaration order when they form a cycle,
    which loading has already reported)."""
    try:
        names = resolution_order(variables)
    except VariableCycle:
        names = list(variables)
    return [(name, variables[name]) for name in names]
