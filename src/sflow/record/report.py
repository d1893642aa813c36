"""The run report: one self-contained HTML file made from a run directory alone.

It opens offline (a cluster login node has no CDN): styles, the graph, the timeline and the
plots are inline SVG and CSS, and the one small script only filters the task table. Everything
a task wrote reaches the page escaped (a log may hold `<script>`).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from sflow.record.report_svg import Bar, Plot, collapse, layered, line_plot, timeline
from sflow.record.status import RunStatus, TaskStatus, clock, read_json, read_status, recorded_events, span
from sflow.record.tail import last_lines, printable

TAIL_LINES = 30
MOST_GRAPH_NODES = 150  # a bigger graph shows each task's replicas as one node
MONITOR_GLOB = "monitor/**/*.csv"  # <run>/monitor/<task or workflow>/<node>.csv, as `monitor` writes them


@dataclass
class LogTail:
    title: str
    path: str
    lines: list[str]


@dataclass
class TaskRow:
    task: TaskStatus
    anchor: str
    code: str
    job: str
    duration: str
    nodes: str
    gpus: str
    detail: str
    tails: list[LogTail] = field(default_factory=list)


def write_report(run_dir: Path) -> Path:
    """Write the report of the run in `run_dir` to `<run_dir>/report.html`."""
    out = run_dir / "report.html"
    out.write_text(render_report(run_dir), encoding="utf-8")
    return out


def render_report(run_dir: Path) -> str:
    """The report of the run in `run_dir` as HTML text."""
    from jinja2 import Environment

    status = read_status(run_dir.resolve())
    plan = (read_json(run_dir / "plan.json") or {}).get("tasks", {})
    summary = read_json(run_dir / "summary.json") or {}
    states = {name: t.state for name, t in status.tasks.items()}
    deps = {name: status.deps.get(name, []) for name in status.tasks}
    members: dict[str, list[str]] = {}
    if len(states) > MOST_GRAPH_NODES:
        group_of = {name: str(plan.get(name, {}).get("task") or name) for name in states}
        states, deps, members = collapse(states, deps, group_of)
    graph = layered(states, deps)
    for node in graph.nodes:
        node.members = members.get(node.name, [])
        if node.members:
            node.label = f"{node.name} \u00d7{len(node.members)}"
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(files("sflow.record").joinpath("report.html.j2").read_text("utf-8"))
    return template.render(
        run=status,
        head=_head(status),
        graph=graph,
        grouped=bool(members),
        timeline=timeline(_attempts(status)),
        rows=[_row(t, status) for t in status.tasks.values()],
        sweeps=_sweeps(run_dir, summary),
        plots=_monitor_plots(run_dir),
        anchor=_anchor,
        made=clock(time.time()),
    )


def _head(status: RunStatus) -> dict[str, str]:
    took = status.ended - status.started if status.ended and status.started else None
    counts = status.counts()
    order = ("succeeded", "failed", "cancelled", "skipped", "running", "pending")
    tally = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: (s not in order, s)))
    return {
        "started": clock(status.started),
        "duration": span(took),
        "tally": tally,
        "resumed_from": status.resumed_from or "",
        "stop_reason": status.stop_reason,
    }


def _anchor(name: str) -> str:
    return "task-" + "".join(c if c.isalnum() or c in "-_" else f".{ord(c):x}" for c in name)


def _row(task: TaskStatus, status: RunStatus) -> TaskRow:
    info = task.info
    code = info.get("slurm_state") or ("" if task.exit_code is None else str(task.exit_code))
    detail = f"kept from {info['kept_from']}" if "kept_from" in info else task.reason
    if task.state == "succeeded" and "kept_from" not in info:
        detail = ""
    if status.state in ("killed", "cancelled") and task.state in ("running", "ready", "retrying", "stopping"):
        detail = "was running when its sflow died"
    return TaskRow(
        task,
        _anchor(task.name),
        code or "-",
        str(info.get("slurm_step_id") or info.get("slurm_job_id") or "-"),
        span(task.duration),
        ",".join(info.get("nodes") or []) or "-",
        _gpus_text(_node_gpus(info.get("nodes") or [], info.get("gpus") or [])),
        detail,
        _tails(task),
    )


def _node_gpus(nodes: list[Any], gpus: list[Any]) -> list[tuple[str, list[int]]]:
    """Each node with the GPUs the attempt held on it (`gpus` is one list per node, in order)."""
    per_node = gpus if all(isinstance(g, list) for g in gpus) else [gpus] * len(nodes)
    return [(str(n), list(per_node[i]) if i < len(per_node) else []) for i, n in enumerate(nodes)]


def _gpus_text(held: list[tuple[str, list[int]]]) -> str:
    """`0,1` on one node, `n1:0,1 n2:0,1` on several, `-` for none."""
    if not any(gs for _, gs in held):
        return "-"
    if len(held) == 1:
        return ",".join(map(str, held[0][1]))
    return " ".join(f"{n}:{','.join(map(str, gs))}" for n, gs in held if gs)


def _tails(task: TaskStatus) -> list[LogTail]:
    """The end of each attempt's log, the last attempt first; a task's own words, made printable
    (the template escapes them)."""
    log = task.info.get("log")
    if not log:
        return []
    last = Path(log)
    earlier = sorted(
        last.parent.glob(f"{last.stem}.attempt*.log"),
        key=lambda p: int(p.stem.rpartition("attempt")[2] or 0),
        reverse=True,
    )
    tails = []
    for number, path in [(task.attempts, last)] + [
        (int(p.stem.rpartition("attempt")[2]), p) for p in earlier
    ]:
        lines = [printable(line) for line in last_lines(path, TAIL_LINES)]
        tails.append(LogTail(f"attempt {number}", str(path), lines))
    return tails


def _attempts(status: RunStatus) -> list[tuple[Bar, list[str]]]:
    """Every attempt of this run from `events.jsonl` (when it ran, where, how it ended) with the
    timeline lanes it occupies: `node gpu N` for each GPU it held, else the node."""
    open_: dict[str, tuple[Bar, list[str]]] = {}
    done: list[tuple[Bar, list[str]]] = []
    for event in recorded_events(status.run_dir / "events.jsonl"):
        if "item" in event:  # one item of a map: its task's attempt goes on
            continue
        task, state, at = event["task"], str(event["state"]), float(event.get("time") or 0)
        if state == "running":
            held = _node_gpus(event.get("nodes") or ["local"], event.get("gpus") or [])
            lanes = [f"{n} gpu {g}" for n, gs in held for g in gs] or [n for n, _ in held]
            open_[task] = (Bar(task, int(event.get("attempt") or 1), "running", at, at), lanes)
        elif state not in ("ready", "stopping") and task in open_:
            bar, lanes = open_.pop(task)
            bar.end, bar.state = at, state
            done.append((bar, lanes))
    end = status.ended or time.time()
    for bar, lanes in open_.values():  # still running, or its sflow died under it
        bar.end = max(end, bar.start)
        done.append((bar, lanes))
    for bar, _ in done:
        bar.title = f"{bar.task} attempt {bar.attempt}: {bar.state}, {span(bar.end - bar.start)}"
    return done


def _sweeps(run_dir: Path, summary: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each sweep's outputs table (header, rows): from summary.json, else its `<task>.outputs.csv`."""
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    for base, entry in (summary.get("sweeps") or {}).items():
        rows = entry.get("rows") or []
        header = list(dict.fromkeys(k for row in rows for k in row))
        tables[base] = (header, [[_cell(row.get(k)) for k in header] for row in rows])
    if not tables:
        for path in sorted(run_dir.glob("*.outputs.csv")):
            header, rows = _read_csv(path)
            tables[path.name.removesuffix(".outputs.csv")] = (header, rows)
    return tables


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        return [], []
    return (rows[0], rows[1:]) if rows else ([], [])


def _monitor_plots(run_dir: Path) -> list[Plot]:
    """A line per numeric column of each monitor CSV in the run directory, against its first
    column (the sample time)."""
    plots = []
    for path in sorted(run_dir.glob(MONITOR_GLOB)):
        header, rows = _read_csv(path)
        title = str(path.relative_to(run_dir))
        xs: list[float | None] = [_number(r[0]) if r else None for r in rows]
        if all(x is None for x in xs):  # a time column that is not a number: samples in order
            xs = [float(i) for i in range(len(rows))]
        for i, column in enumerate(header[1:], start=1):
            ys = [_number(r[i]) if len(r) > i else None for r in rows]
            pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if x is not None and y is not None]
            plot = line_plot(title, column, [x for x, _ in pairs], [y for _, y in pairs])
            if plot is not None:
                plots.append(plot)
    return plots


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
