import random

import pytest

from sflow.engine.graph import CycleError, Graph, topological_order
from sflow.errors import PlanError


def test_order_puts_dependencies_first_and_keeps_insertion_order():
    g = Graph({"c": ["a", "b"], "a": [], "b": ["a"], "d": []})
    order = g.order()
    assert order.index("a") < order.index("b") < order.index("c")
    assert order[:2] == ["a", "d"]


def test_cycle_is_named():
    g = Graph({"a": ["c"], "b": ["a"], "c": ["b"], "x": []})
    with pytest.raises(CycleError) as info:
        g.order()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert "dependency cycle" in str(info.value)


def test_self_dependency_is_a_cycle():
    with pytest.raises(CycleError, match="a -> a"):
        Graph({"a": ["a"]}).order()


def test_unknown_dependency():
    with pytest.raises(PlanError, match="unknown task 'zz'"):
        Graph({"a": ["zz"]})


def test_descendants_transitive():
    g = Graph({"a": [], "b": ["a"], "c": ["b"], "d": []})
    assert g.descendants("a") == ["b", "c"]
    assert g.descendants("d") == []


def test_large_chain_without_recursion():
    n = 100_000
    g = Graph({f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(n)})
    order = g.order()
    assert order[0] == "t0" and order[-1] == f"t{n - 1}"
    assert len(g.descendants("t0")) == n - 1


def test_a_long_cycle_is_shown_by_its_ends():
    names = [f"n{i}" for i in range(12)]
    g = Graph({name: [names[i - 1]] for i, name in enumerate(names)})
    with pytest.raises(CycleError) as info:
        g.order()
    assert len(info.value.cycle) == 13  # the whole cycle stays available to code
    assert str(info.value) == (
        "dependency cycle through 12 tasks: n1 -> n2 -> n3 -> n4 -> n5 -> ... (3 more) ... "
        "-> n9 -> n10 -> n11 -> n0 -> n1"
    )


def _kahn(deps: dict[str, list[str]]) -> list[str]:
    """The textbook first-in first-out Kahn order, every node counting its dependencies."""
    unique = {name: list(dict.fromkeys(ds)) for name, ds in deps.items()}
    waiting = {name: len(ds) for name, ds in unique.items()}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, ds in unique.items():
        for dep in ds:
            dependents[dep].append(name)
    out = [name for name, left in waiting.items() if not left]
    for name in out:
        for child in dependents[name]:
            waiting[child] -= 1
            if not waiting[child]:
                out.append(child)
    return out


def test_topological_order_is_kahns_first_in_first_out_order():
    """Nodes with one dependency and nodes with several (repeated ones too) mixed, as generated
    workflows and hand-written ones have them; a cycle among them is found all the same."""
    rng = random.Random(7)
    for _ in range(3000):
        names = [f"n{i}" for i in rng.sample(range(40), rng.randint(1, 14))]
        deps = {}
        for i, name in enumerate(names):
            pool = names if rng.random() < 0.1 else names[:i]
            deps[name] = [rng.choice(pool) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))] if pool else []
        expected = _kahn(deps)
        if len(expected) == len(deps):
            assert topological_order(deps) == expected == Graph(deps).order()
        else:
            with pytest.raises(CycleError) as info:
                topological_order(deps)
            cycle = info.value.cycle
            assert cycle[0] == cycle[-1] and all(
                cycle[i] in deps[cycle[i + 1]] for i in range(len(cycle) - 1)
            )


def test_topological_order_names_the_first_unknown_dependency():
    with pytest.raises(PlanError, match="task 'b' depends on unknown task 'x'"):
        topological_order({"a": (), "b": ("a", "x"), "c": ("y",)})
