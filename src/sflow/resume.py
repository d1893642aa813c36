"""Resuming a run: what an earlier run left, and which tasks a new run keeps or runs again.

A task is kept when it succeeded earlier and its fingerprint is unchanged; everything else
runs again, and so does everything downstream of what runs again. A service (a task with a
readiness probe) runs again whenever a task that needs it does, but that alone does not make
its other dependents run again: it only serves them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.errors import UserError


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
        """Read run.json, plan.json and summary.json (or, for a killed run, events.jsonl)."""
        owner = _read_json(run_dir / "run.json") or {}
        plan = (_read_json(run_dir / "plan.json") or {}).get("tasks", {})
        summary = _read_json(run_dir / "summary.json")
        run_id = str(owner.get("run_id") or run_dir.name)
        entries: dict[str, dict[str, Any]] = (
            summary["tasks"] if summary else _replay(run_dir / "events.jsonl")
        )
        tasks = {}
        for name in dict.fromkeys([*plan, *entries]):
            entry = entries.get(name, {})
            kept_from = entry.get("kept_from")
            task_dir = run_dir / name
            tasks[name] = EarlierTask(
                state=str(entry.get("state", "")),
                reason=str(entry.get("reason", "")),
                attempts=int(entry.get("attempts") or 0),
                fingerprint=plan.get(name, {}).get("fingerprint"),
                entry=entry,
                origin_run=str(kept_from or run_id),
                origin_dir=Path(os.path.realpath(task_dir)) if task_dir.exists() else None,
            )
        workflow = str(owner.get("workflow") or (summary or {}).get("workflow") or "")
        return cls(run_id, run_dir, workflow, tasks, finished=summary is not None)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _replay(events: Path) -> dict[str, dict[str, Any]]:
    """Each task's last recorded state, from the event log of a run that wrote no summary."""
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = events.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the last line of a run killed mid-write
        entry = out.setdefault(event["task"], {})
        entry.update(state=event["state"], attempts=event.get("attempt", 0), reason=event.get("reason", ""))
    return out


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
) -> dict[str, Decision]:
    """Keep or run, per task of the new run; `order` lists dependencies first."""
    out: dict[str, Decision] = {}
    for name in order:
        out[name] = _own_decision(earlier.tasks.get(name), fingerprints[name])
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
    if task.state in ("running", "ready", "retrying"):
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
