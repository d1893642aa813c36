"""Resuming a run: what an earlier run left, and which tasks a new run keeps or runs again.

A task is kept when it succeeded earlier and its fingerprint is unchanged; everything else
runs again, and so does everything downstream of what runs again. A service (a task with a
readiness probe) runs again whenever a task that needs it does, but that alone does not make
its other dependents run again: it only serves them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.errors import UserError
from sflow.record.status import read_json, read_status


@dataclass(frozen=True)
class EarlierTask:
    """One task as an earlier run left it."""

    state: str  # succeeded, failed, cancelled, skipped, running (a killed run), "" (never started)
    reason: str = ""
    attempts: int = 0
    fingerprint: str | None = None
    entry: dict[str, Any] = field(default_factory=dict)  # its summary entry, when there is one
    origin_run: str = ""  # the run whose work produced it (an earlier one for a kept task)
    origin_dir: Path | None = None  # that run's folder of this task


@dataclass
class EarlierRun:
    """What a finished (or killed) run recorded about its tasks."""

    run_id: str
    run_dir: Path
    workflow: str
    tasks: dict[str, EarlierTask]
    finished: bool  # summary.json exists; False for a run whose sflow was killed

    @classmethod
    def load(cls, run_dir: Path) -> EarlierRun:
        """What `run_dir` recorded: its summary or, for a run whose sflow was killed, its events."""
        status = read_status(run_dir)
        plan = (read_json(run_dir / "plan.json") or {}).get("tasks", {})
        tasks = {}
        for name, task in status.tasks.items():
            folder = run_dir / name
            tasks[name] = EarlierTask(
                state=task.state,
                reason=task.reason,
                attempts=task.attempts,
                fingerprint=plan.get(name, {}).get("fingerprint"),
                entry=task.entry(),
                origin_run=str(task.info.get("kept_from") or status.run_id),
                origin_dir=Path(os.path.realpath(folder)) if folder.exists() else None,
            )
        finished = status.state not in ("running", "killed")
        return cls(status.run_id, run_dir, status.workflow, tasks, finished)


@dataclass(frozen=True)
class Decision:
    """Whether a task is kept from the earlier run, and why (shown per task)."""

    keep: bool
    reason: str


def decide(
    earlier: EarlierRun,
    fingerprints: Mapping[str, str],
    deps: Mapping[str, Iterable[str]],
    order: list[str],
    services: set[str],
    needs: Callable[[str, EarlierTask], str] | None = None,
) -> dict[str, Decision]:
    """Keep or run, per task of the new run; `order` lists dependencies first.

    `needs` may still refuse a task that could be kept: it returns why (e.g. a Python task's
    stored result is missing), or '' to keep it.
    """
    out: dict[str, Decision] = {}
    for name in order:
        out[name] = _own_decision(earlier.tasks.get(name), fingerprints[name])
        if out[name].keep and needs is not None:
            missing = needs(name, earlier.tasks[name])
            if missing:
                out[name] = Decision(False, missing)
        if out[name].keep:
            again = next((d for d in deps.get(name, ()) if not out[d].keep), None)
            if again is not None:
                out[name] = Decision(False, f"after '{again}', which runs again")
    needed_by = _dependents(deps)
    for name in reversed(order):  # a service runs again when something that needs it does
        if out[name].keep and name in services:
            user = next((c for c in needed_by.get(name, ()) if not out[c].keep), None)
            if user is not None:
                out[name] = Decision(False, f"service needed by '{user}'")
    return out


def _own_decision(task: EarlierTask | None, fingerprint: str) -> Decision:
    if task is None:
        return Decision(False, "new task")
    if task.state != "succeeded":
        return Decision(False, _unfinished(task))
    if task.fingerprint is None:
        return Decision(False, "no fingerprint recorded")
    if task.fingerprint != fingerprint:
        return Decision(False, "changed")
    if task.origin_dir is None:
        return Decision(False, "its folder is gone")
    return Decision(True, "succeeded, unchanged")


def _unfinished(task: EarlierTask) -> str:
    if task.state in ("", "pending") or (task.state == "cancelled" and task.attempts == 0):
        return "never started"
    if task.state in ("running", "ready", "retrying", "stopping"):
        return "unfinished (its run ended without a word)"
    return f"{task.state} ({task.reason})" if task.reason else task.state


def _dependents(deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            out.setdefault(d, []).append(name)
    return out


def check_resumable(earlier: EarlierRun, workflow: str, alive: bool) -> None:
    """A UserError when the earlier run cannot be resumed by a run of `workflow`."""
    if earlier.workflow and earlier.workflow != workflow:
        raise UserError(
            f"run {earlier.run_id} is of workflow '{earlier.workflow}', not '{workflow}': nothing to resume"
        )
    if not earlier.finished and alive:
        raise UserError(f"run {earlier.run_id} is still running; resume it once it has ended")
