"""Where the report's pictures put things: the task graph in layers, attempts on a time axis,
monitor series as lines. Pure geometry; the report's template turns it into inline SVG.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

BOX_W, BOX_H, GAP_X, GAP_Y = 170, 30, 24, 46
LABEL_W, BAR_H, AXIS_H, PLOT_W = 170, 16, 22, 900


# -- the task graph ---------------------------------------------------------------------------------


@dataclass
class GraphNode:
    name: str
    label: str
    state: str
    x: int = 0
    y: int = 0
    members: list[str] = field(default_factory=list)  # the task instances a collapsed node stands for


@dataclass
class Graph:
    nodes: list[GraphNode]
    edges: list[tuple[GraphNode, GraphNode]]
    width: int
    height: int


def layered(states: Mapping[str, str], deps: Mapping[str, Sequence[str]]) -> Graph:
    """Each task one layer below the deepest task it depends on; within a layer, ordered by where
    its dependencies stand (fewer crossing edges), then by name."""
    level: dict[str, int] = {}
    for name in _topological(states, deps):
        level[name] = 1 + max((level[d] for d in deps.get(name, ()) if d in level), default=-1)
    rows: dict[int, list[str]] = {}
    for name in states:
        rows.setdefault(level.get(name, 0), []).append(name)
    nodes: dict[str, GraphNode] = {}
    for depth in sorted(rows):
        row = sorted(rows[depth], key=lambda n: (_mean_x(n, deps, nodes), n))
        for i, name in enumerate(row):
            node = GraphNode(name, name, states[name], x=i * (BOX_W + GAP_X), y=depth * (BOX_H + GAP_Y))
            nodes[name] = node
    edges = [(nodes[d], nodes[n]) for n in states for d in deps.get(n, ()) if d in nodes]
    width = max((len(r) for r in rows.values()), default=0) * (BOX_W + GAP_X) - GAP_X
    height = len(rows) * (BOX_H + GAP_Y) - GAP_Y
    return Graph(list(nodes.values()), edges, max(width, 0), max(height, 0))


def collapse(
    states: Mapping[str, str], deps: Mapping[str, Sequence[str]], group_of: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """The graph of task groups (a task's replicas as one node): the state of each group (its
    worst), the dependencies between groups and each group's members."""
    members: dict[str, list[str]] = {}
    for name in states:
        members.setdefault(group_of.get(name, name), []).append(name)
    group_state = {g: worst(states[m] for m in ms) for g, ms in members.items()}
    group_deps: dict[str, list[str]] = {}
    for g, ms in members.items():
        found = {group_of.get(d, d) for m in ms for d in deps.get(m, ())} - {g}
        group_deps[g] = sorted(found & members.keys())
    return group_state, group_deps, members


_SEVERITY = (
    "failed",
    "cancelled",
    "stopping",
    "running",
    "ready",
    "retrying",
    "skipped",
    "pending",
    "succeeded",
)


def worst(states: Iterable[str]) -> str:
    """The state that matters most of several (a failed replica makes its group failed)."""
    found = set(states)
    return next((s for s in _SEVERITY if s in found), next(iter(found), "pending"))


def _topological(states: Mapping[str, str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()
    for root in states:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen or name not in states:
                continue
            seen.add(name)
            stack.append((name, True))
            stack.extend((d, False) for d in deps.get(name, ()) if d not in seen)
    return order


def _mean_x(name: str, deps: Mapping[str, Sequence[str]], placed: Mapping[str, GraphNode]) -> float:
    xs = [placed[d].x for d in deps.get(name, ()) if d in placed]
    return sum(xs) / len(xs) if xs else 0.0


# -- the timeline -----------------------------------------------------------------------------------


@dataclass
class Bar:
    task: str
    attempt: int
    state: str  # how the attempt ended: succeeded, failed, retrying, cancelled, running
    start: float
    end: float
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    title: str = ""


@dataclass
class Lane:
    label: str
    y: float
    height: float


@dataclass
class Timeline:
    bars: list[Bar]
    lanes: list[Lane]
    ticks: list[tuple[float, str]]
    width: int
    height: int


def timeline(attempts: Sequence[tuple[Bar, Sequence[str]]]) -> Timeline:
    """Attempts on a shared time axis, one lane per node and GPU (a 2-GPU attempt shows in both
    lanes); attempts that overlap in one lane take sub-rows."""
    if not attempts:
        return Timeline([], [], [], LABEL_W + PLOT_W, 0)
    t0 = min(bar.start for bar, _ in attempts)
    t1 = max(bar.end for bar, _ in attempts)
    scale = PLOT_W / max(t1 - t0, 1e-6)
    by_lane: dict[str, list[Bar]] = {}
    for bar, lanes in attempts:
        for lane in lanes:
            by_lane.setdefault(lane, []).append(bar)
    bars: list[Bar] = []
    lanes_out: list[Lane] = []
    y = float(AXIS_H)
    for label in sorted(by_lane, key=_lane_key):
        ends: list[float] = []
        for bar in sorted(by_lane[label], key=lambda b: (b.start, b.task)):
            row = next((i for i, end in enumerate(ends) if end <= bar.start), len(ends))
            if row == len(ends):
                ends.append(bar.end)
            ends[row] = bar.end
            x = LABEL_W + (bar.start - t0) * scale
            w = max((bar.end - bar.start) * scale, 2.0)
            bars.append(Bar(**{**bar.__dict__, "x": x, "y": y + row * (BAR_H + 2), "w": w}))
        height = len(ends) * (BAR_H + 2)
        lanes_out.append(Lane(label, y, height))
        y += height + 6
    return Timeline(bars, lanes_out, _ticks(t1 - t0, scale), LABEL_W + PLOT_W, int(y))


def _lane_key(label: str) -> tuple[str, int, str]:
    node, _, gpu = label.partition(" gpu ")
    return (node, int(gpu) if gpu.isdigit() else -1, gpu)


def _ticks(length: float, scale: float, most: int = 8) -> list[tuple[float, str]]:
    """Round time marks along the axis: at most `most`, at 1, 2 or 5 times a power of ten seconds."""
    steps = (m * 10.0**e for e in range(-3, 7) for m in (1, 2, 5))
    step = next((s for s in steps if length / s <= most), 1e7)
    count = int(length / step) + 1
    return [(LABEL_W + i * step * scale, _seconds(i * step)) for i in range(count)]


def _seconds(t: float) -> str:
    if t >= 7200:
        return f"{t / 3600:g}h"
    if t >= 120:
        return f"{t / 60:g}m"
    return f"{round(t, 3):g}s" if t >= 1 or t == 0 else f"{t * 1000:.0f}ms"


# -- monitor plots ----------------------------------------------------------------------------------


@dataclass
class Plot:
    title: str
    column: str
    points: str  # an SVG polyline's points
    low: float
    high: float
    width: int = 420
    height: int = 120


def line_plot(title: str, column: str, xs: Sequence[float], ys: Sequence[float]) -> Plot | None:
    """A series as a polyline in a small box; None without two points to draw."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False)]
    if len(pairs) < 2:
        return None
    x0, x1 = min(x for x, _ in pairs), max(x for x, _ in pairs)
    lo, hi = min(y for _, y in pairs), max(y for _, y in pairs)
    plot = Plot(title, column, "", lo, hi)
    sx = (plot.width - 10) / max(x1 - x0, 1e-9)
    sy = (plot.height - 20) / max(hi - lo, 1e-9)
    plot.points = " ".join(
        f"{5 + (x - x0) * sx:.1f},{plot.height - 10 - (y - lo) * sy:.1f}" for x, y in pairs
    )
    return plot
