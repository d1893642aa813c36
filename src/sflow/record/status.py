"""A run's state read from its directory alone: while it runs, after it ended, or after its
sflow was killed (then the states are the last ones it recorded, and the run says so).

Finished runs are read from `summary.json`; others from `plan.json` (every task, before any
started) and `events.jsonl` (each state change, written as it happens).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

FINAL = ("succeeded", "failed", "cancelled", "skipped")
# where an attempt runs, in its running event; `pid` and `pid_start` name its local process group
WHERE = ("nodes", "gpus", "log", "slurm_job_id", "slurm_step_id", "pid", "pid_start")


class TaskStatus(msgspec.Struct):
    """One task as the run directory knows it."""

    name: str
    state: str = "pending"
    attempts: int = 0
    reason: str = ""
    exit_code: int | None = None
    start: float | None = None
    end: float | None = None
    info: dict[str, Any] = msgspec.field(default_factory=dict)  # nodes, gpus, log, Slurm ids, outputs ...

    def entry(self) -> dict[str, Any]:
        """The task as a `summary.json` entry."""
        fields = {"state": self.state, "attempts": self.attempts, "reason": self.reason}
        fields.update(exit_code=self.exit_code, start=self.start, end=self.end)
        return {**fields, **self.info}

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


class RunStatus(msgspec.Struct):
    """A run: who ran it, its state and its tasks in start order."""

    run_id: str
    workflow: str
    run_dir: Path
    state: str  # running, succeeded, failed, interrupted, killed, cancelled (by `sflow cancel`)
    started: float | None
    ended: float | None
    tasks: dict[str, TaskStatus]
    owner: dict[str, Any] = msgspec.field(default_factory=dict)
    stop_reason: str = ""
    deps: dict[str, list[str]] = msgspec.field(default_factory=dict)
    plan: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)  # plan.json's entry of each task

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.tasks.values():
            out[task.state] = out.get(task.state, 0) + 1
        return out

    @property
    def resumed_from(self) -> str | None:
        value = self.owner.get("resumed_from")
        return str(value) if value else None


class Waiting(msgspec.Struct, frozen=True):
    """Why a pending task has not started: `reason` as the views show it, `on` the tasks it waits for."""

    reason: str  # "on service db", "on dependencies", "for GPUs", "for a slot (max_concurrent)"
    on: tuple[str, ...] = ()

    def naming(self, limit: int = 3) -> str:
        """The reason with the dependencies it waits on: `on dependencies: a, b, c ...`."""
        if self.reason != "on dependencies":
            return self.reason
        return f"{self.reason}: {', '.join(self.on[:limit])}" + (" ..." if len(self.on) > limit else "")


_LETS_DEPENDENTS_START = ("succeeded", "ready")
_LIVE = ("running", "retrying")
_UNDER_WAY = ("running", "ready", "retrying", "stopping")  # states of a task with a process


def waiting(
    deps: Iterable[str], state_of: Callable[[str], str], is_service: Callable[[str], bool], gpus: bool
) -> Waiting:
    """Why a pending task waits: the one reading of the live view and `sflow status`.

    A dependency that has not succeeded (nor become a ready service) holds it: a service still
    starting (running, not ready yet), else its dependencies. With none left, placement holds it:
    only a task that asks for GPUs can wait for them; any task may wait for a `max_concurrent` slot.
    """
    unmet = tuple(d for d in deps if state_of(d) not in _LETS_DEPENDENTS_START)
    starting = [d for d in unmet if is_service(d) and state_of(d) in _LIVE]
    if unmet and len(starting) == len(unmet):
        return Waiting(f"on service {starting[0]}", unmet)
    if unmet:
        return Waiting("on dependencies", unmet)
    return Waiting("for GPUs" if gpus else "for a slot (max_concurrent)")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(run_dir: Path) -> RunStatus:
    """The run in `run_dir` as it stands now."""
    owner = read_json(run_dir / "run.json") or {}
    plan = (read_json(run_dir / "plan.json") or {}).get("tasks", {})
    summary = read_json(run_dir / "summary.json")
    run_id = str(owner.get("run_id") or run_dir.name)
    workflow = str(owner.get("workflow") or (summary or {}).get("workflow") or "")
    deps = {name: list(entry.get("deps", ())) for name, entry in plan.items()}
    if summary is not None:
        tasks = {name: _from_summary(name, entry) for name, entry in summary.get("tasks", {}).items()}
        state = _cancelled(run_dir, _final_state(summary))
        started = owner.get("started")
        ended = started + float(summary.get("elapsed") or 0) if started else _last_end(tasks)
        return RunStatus(
            run_id,
            workflow,
            run_dir,
            state,
            started,
            ended,
            tasks,
            owner,
            summary.get("stop_reason", ""),
            deps,
            plan,
        )
    tasks = {name: TaskStatus(name) for name in plan}
    last = _replay(run_dir / "events.jsonl", tasks)
    state = "running" if owner_alive(owner) else _cancelled(run_dir, "killed")
    ended = last if state != "running" else None
    if state == "cancelled" and same_machine(owner):
        for group in local_groups(tasks.values()):
            if not group_is_ours(group):
                tasks[group.task].state, tasks[group.task].reason = "cancelled", "stopped by sflow cancel"
    return RunStatus(
        run_id, workflow, run_dir, state, owner.get("started"), ended, tasks, owner, "", deps, plan
    )


CANCEL_FILE = "cancel.json"  # written by `sflow cancel`


def _cancelled(run_dir: Path, state: str) -> str:
    """`cancelled` for a run `sflow cancel` stopped (its sflow interrupted, or found dead)."""
    return "cancelled" if state in ("interrupted", "killed") and (run_dir / CANCEL_FILE).exists() else state


def _final_state(summary: dict[str, Any]) -> str:
    if summary.get("ok"):
        return "succeeded"
    return "interrupted" if summary.get("interrupted") else "failed"


def _from_summary(name: str, entry: dict[str, Any]) -> TaskStatus:
    known = ("state", "attempts", "reason", "exit_code", "start", "end")
    return TaskStatus(
        name,
        state=str(entry.get("state", "pending")),
        attempts=int(entry.get("attempts") or 0),
        reason=str(entry.get("reason") or ""),
        exit_code=entry.get("exit_code"),
        start=entry.get("start"),
        end=entry.get("end"),
        info={k: v for k, v in entry.items() if k not in known},
    )


def _replay(events: Path, tasks: dict[str, TaskStatus]) -> float | None:
    """Apply every recorded event to `tasks`; the time of the last one."""
    last = None
    for event in recorded_events(events):
        task = tasks.setdefault(event["task"], TaskStatus(event["task"]))
        apply_event(task, event)
        last = event.get("time", last)
    return last


def recorded_events(events: Path) -> list[dict[str, Any]]:
    """The task events of `events.jsonl` in order (task, state, time, ...); none when it is missing."""
    try:
        lines = events.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(event, dict) and "task" in event and "state" in event:
            out.append(event)
    return out


def apply_event(task: TaskStatus, event: dict[str, Any]) -> None:
    """One line of `events.jsonl` applied to what is known of its task."""
    if "item" in event:  # one item of a map: the task's own state is unchanged
        if event.get("reason"):
            count_item_failure(task.info, event)
        return
    state = str(event["state"])
    task.state = state
    task.attempts = max(task.attempts, int(event.get("attempt") or 0))
    task.reason = str(event.get("reason") or task.reason if state != "running" else "")
    if state == "running":
        task.start = task.start or event.get("time")
        task.info.update({k: event[k] for k in WHERE if k in event})
    if state in FINAL:
        task.end = event.get("time")
        if "exit_code" in event:
            task.exit_code = event["exit_code"]


def count_item_failure(info: dict[str, Any], line: dict[str, Any]) -> None:
    """A task's `item_failures` and `last_item_failure` (summary.json, `sflow status`), from an item event."""
    info["item_failures"] = int(info.get("item_failures") or 0) + 1
    info["last_item_failure"] = f"item {line['item']} attempt {line['attempt']}: {line.get('reason', '')}"


def _last_end(tasks: dict[str, TaskStatus]) -> float | None:
    ends = [t.end for t in tasks.values() if t.end is not None]
    return max(ends) if ends else None


def run_alive(run_dir: Path) -> bool:
    """False when the sflow running `run_dir` is known to be gone."""
    return owner_alive(read_json(run_dir / "run.json") or {})


def owner_alive(owner: dict[str, Any]) -> bool:
    """False when the run's sflow is known to be gone: same host, and its pid is not running,
    is a zombie (killed, not yet reaped by its parent), or is now another process (a pid is
    reused; its start time tells them apart)."""
    if not owner or owner.get("host") != socket.gethostname():
        return True  # unknown, or another host: cannot tell, assume it runs
    try:
        pid = int(owner["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):  # it has ended; only its exit status waits for its parent
        return False
    started = owner.get("pid_start")
    return started is None or start == started


class LocalGroup(msgspec.Struct, frozen=True):
    """The process group of a task's attempt on the run's host: its leader's pid (the pgid) and
    start time, which tells the leader apart from a later process given the same pid."""

    task: str
    pgid: int
    start: int


def local_groups(tasks: Iterable[TaskStatus]) -> list[LocalGroup]:
    """The process groups of the tasks recorded as still under way."""
    return [
        LocalGroup(t.name, int(t.info["pid"]), int(t.info["pid_start"]))
        for t in tasks
        if t.state in _UNDER_WAY and t.info.get("pid") and t.info.get("pid_start") is not None
    ]


def group_is_ours(group: LocalGroup) -> bool:
    """Whether the group's leader still runs and is the task's process (not a reused pid)."""
    stat = _proc_stat(group.pgid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == group.start


def same_machine(owner: dict[str, Any]) -> bool:
    """Whether the run's sflow ran on this host since its last boot: its pids mean ours."""
    return owner.get("host") == socket.gethostname() and owner.get("boot_id") == boot_id()


def boot_id() -> str | None:
    """This boot's id (Linux): start times since boot compare only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux), to tell a reused pid apart."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from `/proc/PID/stat`; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def clock(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def span(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3m05s`, `2h01m`."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
