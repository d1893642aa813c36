import asyncio

import pytest

from sflow.backends.placement import EVERY_NODE, Node, Placer, Request
from sflow.errors import PlanError


def nodes(n=2, gpus=2):
    return [Node(f"n{i}", "127.0.0.1", i, gpus) for i in range(n)]


def test_default_request_takes_least_loaded_node():
    p = Placer(nodes(2))
    a = p.try_place(Request(), "a")
    b = p.try_place(Request(), "b")
    assert a.node_names == ["n0"] and b.node_names == ["n1"]


def test_gpus_are_exclusive_and_reused_after_release():
    p = Placer(nodes(1, gpus=2))
    a = p.try_place(Request(gpus=1), "a")
    b = p.try_place(Request(gpus=1), "b")
    assert a.gpu_list != b.gpu_list
    assert sorted(a.gpu_list + b.gpu_list) == [0, 1]
    assert p.try_place(Request(gpus=1), "c") is None
    p.release(a, "a")
    c = p.try_place(Request(gpus=1), "c")
    assert c.gpu_list == a.gpu_list


def test_negative_index_counts_from_the_end_and_exclude():
    p = Placer(nodes(3, gpus=0))
    assert p.try_place(Request(indices=(-1,)), "a").node_names == ["n2"]
    assert p.try_place(Request(count=2, exclude=("n0",)), "b").node_names == ["n1", "n2"]


def test_impossible_request_is_a_plan_error():
    p = Placer(nodes(2, gpus=2), backend="local")
    with pytest.raises(PlanError, match="asks for 3 node"):
        p.candidates(Request(count=3), "big")
    with pytest.raises(PlanError, match="4 GPU"):
        p.candidates(Request(gpus=4), "greedy")
    with pytest.raises(PlanError, match="out of range"):
        p.candidates(Request(indices=(5,)), "far")


def test_place_waits_for_release_without_polling():
    async def main():
        p = Placer(nodes(1, gpus=1))
        first = p.try_place(Request(gpus=1), "a")
        waiter = asyncio.ensure_future(p.place(Request(gpus=1), "b"))
        await asyncio.sleep(0)
        assert not waiter.done()
        p.release(first, "a")
        second = await asyncio.wait_for(waiter, 1)
        return second.gpu_list

    assert asyncio.run(main()) == [0]


def test_negative_exclude_counts_from_the_end_and_out_of_range_is_an_error():
    p = Placer(nodes(3, gpus=0), backend="local")
    assert p.try_place(Request(count=2, exclude=(-1,)), "a").node_names == ["n0", "n1"]
    assert p.try_place(Request(exclude=("n0", -2)), "b").node_names == ["n2"]
    with pytest.raises(PlanError, match="out of range"):
        p.candidates(Request(exclude=(-4,)), "far")


def test_any_one_node_placements_share_one_value_and_release_like_any_other():
    p = Placer(nodes(2, gpus=0))
    a, b, c = (p.try_place(Request(), t) for t in "abc")
    assert a.node_names == ["n0"] and b.node_names == ["n1"] and c is a
    p.release(a, "a")
    p.release(c, "c")
    assert p.try_place(Request(), "d") is a


def test_a_request_only_parked_services_block_fails_at_once():
    async def main():
        p = Placer(nodes(1, gpus=2), backend="local")
        p.try_place(Request(gpus=2), "server")
        waiter = asyncio.ensure_future(p.place(Request(gpus=1), "client"))
        await asyncio.sleep(0)
        assert not waiter.done()  # the server may still end and give its GPUs back
        p.park("server")  # it became ready: it keeps them until the other tasks end
        with pytest.raises(PlanError, match="service\\(s\\) 'server' hold them"):
            await asyncio.wait_for(waiter, 1)

    asyncio.run(main())


def test_a_request_waits_while_anything_but_a_parked_service_may_still_release():
    async def main():
        p = Placer(nodes(1, gpus=2), backend="local")
        p.try_place(Request(gpus=1), "server")
        worker = p.try_place(Request(gpus=1), "worker")
        p.park("server")
        waiter = asyncio.ensure_future(p.place(Request(gpus=1), "next"))
        await asyncio.sleep(0)
        assert not waiter.done()
        p.release(worker, "worker")
        return (await asyncio.wait_for(waiter, 1)).gpu_list

    assert asyncio.run(main()) == [1]


def test_a_released_service_is_no_longer_parked():
    async def main():
        p = Placer(nodes(1, gpus=1), backend="local")
        held = p.try_place(Request(gpus=1), "svc")
        p.park("svc")
        p.release(held, "svc")
        p.try_place(Request(gpus=1), "other")  # held by a task that is not parked
        waiter = asyncio.ensure_future(p.place(Request(gpus=1), "late"))
        await asyncio.sleep(0)
        assert not waiter.done()
        waiter.cancel()

    asyncio.run(main())


def test_gpus_of_a_node_fill_before_the_next_nodes():
    """nv-sflow's guide: replicas of 2 GPUs on 4-GPU nodes get 0,1 then 2,3 on node 0, then node 1."""
    p = Placer(nodes(2, gpus=4))
    placed = [p.try_place(Request(total_gpus=2), f"t2_{i}") for i in range(3)]
    assert [(x.node_names, x.gpu_list) for x in placed] == [
        (["n0"], [0, 1]),
        (["n0"], [2, 3]),
        (["n1"], [0, 1]),
    ]


def test_a_gpu_run_is_contiguous_and_never_straddles_two_nodes():
    p = Placer(nodes(2, gpus=4))
    one = p.try_place(Request(total_gpus=1), "one")  # GPU 0 of n0
    two = p.try_place(Request(total_gpus=2), "two")  # 1,2 of n0
    assert (one.gpu_list, two.gpu_list) == ([0], [1, 2])
    p.release(one, "one")  # n0 has 0 and 3 free: no run of 2
    assert p.try_place(Request(total_gpus=2), "three").node_names == ["n1"]


def test_more_gpus_than_a_node_has_span_whole_nodes():
    p = Placer(nodes(2, gpus=4))
    placed = p.try_place(Request(total_gpus=8), "big")
    assert placed.node_names == ["n0", "n1"] and placed.gpus == ((0, 1, 2, 3), (0, 1, 2, 3))
    with pytest.raises(PlanError, match="do not split evenly"):
        Placer(nodes(3, gpus=4)).try_place(Request(total_gpus=10), "odd")


def test_a_task_waits_for_a_slot_and_gets_it_when_one_is_released():
    async def main():
        p = Placer(nodes(2, gpus=0), backend="local", max_concurrent=2)
        a = await p.place(Request(), "a")
        await p.place(Request(), "b")
        third = asyncio.ensure_future(p.place(Request(), "c"))
        await asyncio.sleep(0)
        assert not third.done()  # two run: the third waits, though the nodes have room
        p.release(a, "a")
        return (await asyncio.wait_for(third, 1)).node_names

    assert asyncio.run(main()) == ["n0"]


def test_a_ready_service_gives_its_slot_back_so_its_dependent_can_start():
    async def main():
        p = Placer(nodes(1, gpus=0), backend="local", max_concurrent=1)
        await p.place(Request(), "server")
        client = asyncio.ensure_future(p.place(Request(), "client"))
        await asyncio.sleep(0)
        assert not client.done()
        p.park("server")  # ready: it keeps its node, not its slot
        await asyncio.wait_for(client, 1)
        p.park("server")  # twice gives back nothing more
        late = asyncio.ensure_future(p.place(Request(), "late"))
        await asyncio.sleep(0)
        assert not late.done()  # the client holds the one slot
        late.cancel()

    asyncio.run(main())


def test_a_cancelled_wait_for_a_slot_takes_none():
    async def main():
        p = Placer(nodes(1, gpus=0), backend="local", max_concurrent=1)
        a = await p.place(Request(), "a")
        waiting = asyncio.ensure_future(p.place(Request(), "b"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        p.release(a, "a")
        await asyncio.wait_for(p.place(Request(), "c"), 1)

    asyncio.run(main())


def test_the_local_default_limit_follows_the_cpus_sflow_may_use(monkeypatch):
    from sflow.backends import local
    from sflow.schema.models import LocalBackend as LocalConfig

    backend = local.LocalBackend("local", LocalConfig(name="local"))
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert backend.default_max_concurrent() == 32
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert backend.default_max_concurrent() == 8  # tasks that mostly wait still overlap


def test_an_every_node_request_takes_every_node_but_the_excluded_ones():
    p = Placer(nodes(3, gpus=2))
    a = p.try_place(EVERY_NODE, "a")
    assert a.node_names == ["n0", "n1", "n2"] and a.gpus == ()
    assert p.try_place(EVERY_NODE, "b") is a  # one shared value, as for one-node placements
    p.release(a, "a")
    p.release(a, "b")
    assert p.try_place(Request(every_node=True, exclude=(0,)), "c").node_names == ["n1", "n2"]
    assert p.try_place(Request(), "d").node_names == ["n0"]  # loads went back down
    gpus = p.try_place(Request(gpus=2), "e")  # an every-node task holds no GPU
    assert gpus is not None and gpus.gpu_list == [0, 1]


def test_a_request_starting_at_a_node_goes_round_from_there():
    p = Placer(nodes(3, gpus=1))
    assert p.try_place(Request(count=1, first=1), "a").node_names == ["n1"]
    assert p.try_place(Request(count=2, first=2), "b").node_names == ["n2", "n0"]
    assert p.try_place(Request(count=1, first=4), "c").node_names == ["n1"]  # 4 nodes on: n1 again
    taken = p.try_place(Request(count=1, gpus=1, first=1), "d")
    assert taken.node_names == ["n1"]
    assert p.try_place(Request(count=1, gpus=1, first=1), "e").node_names == ["n2"]  # n1's GPU is taken
