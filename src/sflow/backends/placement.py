"""Which nodes and GPU indices each task instance gets.

Nodes are shared by default (a task takes the least-loaded ones); GPUs are exclusive
and handed back when a task ends, so a later task reuses them. A request that could
never fit is a `PlanError` at planning time, before anything runs. A request that can
no longer fit, because everything holding what it needs is a ready service that keeps it
until the other tasks end, is a `PlanError` as soon as that is so, not a wait forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from sflow.errors import PlanError


class Node(msgspec.Struct, frozen=True):
    """One node of an allocation, as expressions see it (`backends.<b>.nodes[i]`)."""

    name: str
    ip_address: str
    index: int
    num_gpus: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ip_address": self.ip_address,
            "index": self.index,
            "num_gpus": self.num_gpus,
        }


class Request(msgspec.Struct, frozen=True):
    """What a task asks for: `count` nodes (or these `indices`), minus `exclude`, `gpus` per node.

    `total_gpus` asks for GPUs without saying on how many nodes: one node when they fit on one,
    else as many whole nodes as they need (`gpus: {count: 8}` on 4-GPU nodes is 4 on each of 2).
    `every_node` asks for every node of the allocation but the excluded ones: what a task that
    says nothing of nodes or GPUs gets, as in nv-sflow. `first` is the node the search starts at
    (going round): replica i of a task asking for `count` nodes starts at node i * count, so
    parallel replicas spread over the nodes as nv-sflow lays them out.
    """

    count: int | None = None
    indices: tuple[int, ...] = ()
    exclude: tuple[str | int, ...] = ()
    gpus: int = 0
    gpu_indices: tuple[int, ...] = ()
    total_gpus: int = 0
    every_node: bool = False
    first: int = 0

    @property
    def asks_gpus(self) -> bool:
        """Whether the task holds GPUs (and so may wait for them to be free)."""
        return bool(self.gpus or self.total_gpus or self.gpu_indices)


class Placement(msgspec.Struct, frozen=True):
    """Nodes chosen for one task and the GPU indices it holds on each."""

    nodes: tuple[Node, ...]
    gpus: tuple[tuple[int, ...], ...] = ()

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def gpu_list(self) -> list[int]:
        """GPU indices of the first node (what CUDA_VISIBLE_DEVICES holds there)."""
        return list(self.gpus[0]) if self.gpus else []


ANY_ONE_NODE = Request()  # one node, the least loaded
EVERY_NODE = Request(every_node=True)  # the common request; placement checks for this very object first


def holds_gpus(req: Request) -> bool:
    """True when a request takes GPUs, which other tasks cannot have while it holds them."""
    return bool(req.gpus or req.gpu_indices or req.total_gpus)


def _lowest_run(free: set[int], count: int) -> tuple[int, ...]:
    """The lowest `count` consecutive free GPU indices (() when there is no such run)."""
    if count <= 0:
        return ()
    run: list[int] = []
    for index in sorted(free):
        run = [*run, index] if run and index == run[-1] + 1 else [index]
        if len(run) == count:
            return tuple(run)
    return ()


class _NodeState(msgspec.Struct):
    node: Node
    load: int = 0
    free_gpus: set[int] = msgspec.field(default_factory=set)
    alone: Placement | None = None  # this node and no GPUs: one value shared by every such placement


def _by_load(s: _NodeState) -> tuple[int, int]:
    return (s.load, s.node.index)


class Placer:
    """Tracks load and free GPUs of one allocation's nodes, and how many of its tasks run.

    With `max_concurrent`, a task waits for one of that many slots (first come, first served)
    before it is placed. A ready service gives its slot back (`park`): its dependents, which
    start only once it is ready, must never wait for the slot it holds.
    """

    def __init__(self, nodes: Sequence[Node], backend: str = "", max_concurrent: int | None = None) -> None:
        self.backend = backend
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self._slot_holders: set[str] = set()
        self._nodes = [
            _NodeState(n, free_gpus=set(range(n.num_gpus)), alone=Placement(nodes=(n,))) for n in nodes
        ]
        self._by_name = {s.node.name: s for s in self._nodes}
        self._everywhere = Placement(nodes=tuple(nodes))  # shared by every EVERY_NODE placement
        self._waiters: list[asyncio.Future[None]] = []
        self._holders: dict[str, int] = {}  # task -> placements it holds
        self._parked: set[str] = set()  # holders that keep theirs until the other tasks end

    @property
    def nodes(self) -> list[Node]:
        return [s.node for s in self._nodes]

    def concrete(self, req: Request, task: str) -> Request:
        """A `total_gpus` request as nodes and GPUs per node, by the nodes' GPU count."""
        if not req.total_gpus:
            return req
        per_node = max((s.node.num_gpus for s in self._nodes), default=0)
        if req.total_gpus <= per_node or per_node == 0:
            return msgspec.structs.replace(req, count=1, gpus=req.total_gpus, total_gpus=0)
        nodes = -(-req.total_gpus // per_node)
        if req.total_gpus % nodes:
            raise PlanError(
                f"task '{task}' asks for {req.total_gpus} GPUs, more than a node of backend "
                f"'{self.backend}' has ({per_node}), and they do not split evenly over {nodes} nodes"
            )
        return msgspec.structs.replace(req, count=nodes, gpus=req.total_gpus // nodes, total_gpus=0)

    def candidates(self, req: Request, task: str) -> list[_NodeState]:
        """Nodes the request may use, ignoring what is busy now; PlanError when it can never fit."""
        req = self.concrete(req, task)
        n = len(self._nodes)
        ints = [i for i in (*req.indices, *req.exclude) if isinstance(i, int)]
        bad = [i for i in ints if not -n <= i < n]
        if bad:
            where = f"{n} nodes in '{self.backend}'"
            raise PlanError(f"task '{task}': node index {bad[0]} is out of range ({where})")
        # node indices count from the end when negative, in `indices` and `exclude` alike
        states = [self._nodes[i] for i in dict.fromkeys(req.indices)] if req.indices else list(self._nodes)
        excluded = {self._nodes[e].node.name if isinstance(e, int) else e for e in req.exclude}
        states = [s for s in states if s.node.name not in excluded]
        states = [s for s in states if s.node.num_gpus >= max(req.gpus, len(req.gpu_indices))]
        for gi in req.gpu_indices:
            states = [s for s in states if 0 <= gi < s.node.num_gpus]
        need = self._need(req)
        if req.every_node and states:
            need = len(states)
        if len(states) < need:
            what = f"{need} node(s)" + (f" with {req.gpus} GPU(s) each" if req.gpus else "")
            raise PlanError(
                f"task '{task}' asks for {what} but backend '{self.backend}' can offer {len(states)} "
                f"(of {n} nodes, {self._nodes[0].node.num_gpus if n else 0} GPU(s) per node)"
            )
        return states

    def _need(self, req: Request) -> int:
        if req.count is not None:
            return req.count
        return len(dict.fromkeys(req.indices)) if req.indices else 1

    def try_place(self, req: Request, task: str) -> Placement | None:
        """A placement if the request fits now, else None (it fits once others release)."""
        if req is EVERY_NODE and self._nodes:  # the common case
            for s in self._nodes:
                s.load += 1
            self._holders[task] = self._holders.get(task, 0) + 1
            return self._everywhere
        if (req is ANY_ONE_NODE or req == ANY_ONE_NODE) and self._nodes:
            states = self._nodes
            least = states[0] if len(states) == 1 else min(states, key=_by_load)
            least.load += 1
            self._holders[task] = self._holders.get(task, 0) + 1
            assert least.alone is not None
            return least.alone
        req = self.concrete(req, task)
        candidates = self.candidates(req, task)
        need = len(candidates) if req.every_node else self._need(req)
        if req.first and candidates:
            start = req.first % len(self._nodes)
            candidates.sort(key=lambda s: (s.node.index - start) % len(self._nodes))
        usable = [s for s in candidates if self._gpus_fit(s, req)]
        if len(usable) < need:
            return None
        chosen = usable[:need]  # the first nodes that fit: a node's GPUs fill before the next's
        gpus: list[tuple[int, ...]] = []
        for s in chosen:
            s.load += 1
            picked = tuple(req.gpu_indices) if req.gpu_indices else _lowest_run(s.free_gpus, req.gpus)
            s.free_gpus.difference_update(picked)
            gpus.append(picked)
        self._holders[task] = self._holders.get(task, 0) + 1
        return Placement(
            nodes=tuple(s.node for s in chosen), gpus=tuple(gpus) if req.gpus or req.gpu_indices else ()
        )

    @staticmethod
    def _gpus_fit(s: _NodeState, req: Request) -> bool:
        if req.gpu_indices:
            return set(req.gpu_indices) <= s.free_gpus
        return len(_lowest_run(s.free_gpus, req.gpus)) == req.gpus

    def release(self, placement: Placement, task: str) -> None:
        """`task` is done with `placement` (and with its slot)."""
        self._free_slot(task)
        held = self._holders.get(task, 0) - 1
        if held > 0:
            self._holders[task] = held
        else:
            self._holders.pop(task, None)
            self._parked.discard(task)
        for i, node in enumerate(placement.nodes):
            s = self._by_name[node.name]
            s.load -= 1
            if placement.gpus:
                s.free_gpus.update(placement.gpus[i])
        self._wake_waiters()

    def park(self, task: str) -> None:
        """`task` (a ready service) keeps what it holds until the workflow's other tasks end.

        Its slot it gives back: a ready service waits for the others; it no longer counts as work.
        """
        self._free_slot(task)
        if task in self._holders:
            self._parked.add(task)
            self._wake_waiters()  # each checks whether it can still ever fit

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def place(self, req: Request, task: str) -> Placement:
        """Wait for a slot, then until the request fits (woken by `release` or `park`, never by a
        timer). The slot is held until `release` or `park`.

        PlanError once it never can fit: everything held is held by parked services.
        """
        if self._slots is not None:
            await self._slots.acquire()
            self._slot_holders.add(task)
        try:
            while (placement := self.try_place(req, task)) is None:
                if self._holders and self._parked.issuperset(self._holders):
                    raise PlanError(self._held_by_services(req))
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        except BaseException:
            self._free_slot(task)
            raise
        return placement

    def _free_slot(self, task: str) -> None:
        if self._slots is not None and task in self._slot_holders:
            self._slot_holders.discard(task)
            self._slots.release()

    def _held_by_services(self, req: Request) -> str:
        req = self.concrete(req, "")
        names = sorted(self._parked)
        listed = ", ".join(f"'{n}'" for n in names[:5]) + (
            f" and {len(names) - 5} more" if len(names) > 5 else ""
        )
        what = f"{self._need(req)} node(s)" + (
            f" with {req.gpus or len(req.gpu_indices)} free GPU(s) each"
            if req.gpus or req.gpu_indices
            else ""
        )
        return (
            f"it needs {what} on backend '{self.backend}', but the running service(s) {listed} "
            "hold them until the workflow's other tasks end; give the services fewer GPUs or nodes, "
            "or the backend more"
        )
