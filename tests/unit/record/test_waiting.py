"""Why a pending task waits: one reading for the live view and `sflow status`."""

from __future__ import annotations

from sflow.record.status import Waiting, waiting

SERVICES = {"db"}


def why(deps: tuple[str, ...], states: dict[str, str], gpus: bool = False) -> Waiting:
    return waiting(deps, lambda d: states.get(d, "pending"), SERVICES.__contains__, gpus)


def test_dependencies_that_have_not_succeeded_hold_it():
    got = why(("a", "b", "c"), {"a": "succeeded", "b": "running", "c": "failed"})
    assert got == Waiting("on dependencies", ("b", "c"))
    assert got.naming() == "on dependencies: b, c"


def test_a_service_still_starting_is_named_and_a_ready_one_holds_nothing():
    assert why(("db",), {"db": "running"}).reason == "on service db"
    assert why(("db",), {"db": "retrying"}).reason == "on service db"
    assert why(("db", "a"), {"db": "running", "a": "running"}).reason == "on dependencies"
    assert why(("db",), {"db": "ready"}) == Waiting("for a slot (max_concurrent)")


def test_with_every_dependency_met_placement_holds_it_for_gpus_only_when_it_asks_for_some():
    assert why((), {}, gpus=True) == Waiting("for GPUs")
    assert why(("a",), {"a": "succeeded"}, gpus=False) == Waiting("for a slot (max_concurrent)")


def test_naming_cuts_a_long_list():
    assert Waiting("on dependencies", ("a", "b", "c", "d")).naming() == "on dependencies: a, b, c ..."
