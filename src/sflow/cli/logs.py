"""`sflow logs`: print (or follow) one log of a run."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from sflow.errors import UserError, suggest
from sflow.record.run_dir import safe_name
from sflow.record.status import run_alive


def log_run(output_dir: Path, run_ref: str, task: str | None) -> Path:
    """The run whose log to print. `sflow logs NAME` with NAME a task of the latest run, not a run,
    is answered with the command that prints that task's log."""
    from sflow.record.runs import find_run

    try:
        return find_run(output_dir, run_ref)
    except UserError as exc:
        if task is None and run_ref != "latest" and _is_task_of_latest(output_dir, run_ref):
            raise UserError(
                f"{exc}; '{run_ref}' is a task of the latest run: sflow logs latest {run_ref}"
            ) from None
        raise


def _is_task_of_latest(output_dir: Path, name: str) -> bool:
    from sflow.record.runs import find_run

    try:
        latest = find_run(output_dir, "latest")
    except UserError:
        return False
    return (latest / safe_name(name) / f"{safe_name(name)}.sh").exists() or name in (
        _summary_tasks(latest) or {}
    )


def print_log(run_dir: Path, task: str | None, follow: bool = False, poll: float = 0.2) -> None:
    """Print the log; with `follow`, keep printing as it grows until the run writes summary.json.

    A retry moves the log aside (`<task>.attemptN.log`) and starts a new one at the same path:
    the follower drains the old file through its open descriptor, then goes on with the new one.
    """
    path = run_dir / "sflow.log" if task is None else run_dir / safe_name(task) / f"{safe_name(task)}.log"
    if not path.exists() and not follow:
        _no_log(run_dir, task)
    log: BinaryIO | None = None
    try:
        while True:
            # checked before the read, so no last bytes are lost; a run whose sflow died counts as over
            ended = (run_dir / "summary.json").exists() or not run_alive(run_dir)
            if log is None:
                log = _open(path)
            if log is not None:
                _copy(log)
                if follow and _replaced(log, path):
                    log.close()
                    log = _open(path)
                    print(
                        f"sflow: {path.name} was moved aside for a retry; following the new one",
                        file=sys.stderr,
                    )
                    if log is not None:
                        _copy(log)
            if not follow:
                return
            if ended:
                if log is None:  # the run is over and this task never wrote a log
                    _no_log(run_dir, task)
                return
            time.sleep(poll)
    finally:
        if log is not None:
            log.close()


def _no_log(run_dir: Path, task: str | None) -> None:
    """Say why there is no log: the task never started (and why), is unknown, or has not started yet."""
    tasks = _summary_tasks(run_dir)
    if task is None or tasks is None:
        known = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
        if task is not None and run_alive(run_dir):
            raise UserError(
                f"no log for task '{task}' in {run_dir} yet: the run is still going and the task has "
                f"not started (-f waits for it; tasks that have: {_listed(known)})"
            )
        raise UserError(f"no log for task '{task}' in {run_dir} (tasks: {_listed(known)})")
    entry = tasks.get(task)
    if not isinstance(entry, dict):
        raise UserError(
            f"run {run_dir.name} has no task '{task}'{suggest(task, tasks)} (tasks: {_listed(tasks)})"
        )
    state = entry.get("state", "unknown")
    reason = str(entry.get("reason") or "").removeprefix("not started: ")
    why = f"{state}: {reason}" if reason else state
    if not entry.get("attempts"):
        raise UserError(f"task '{task}' never started ({why}); run dir {run_dir}")
    raise UserError(f"no log for task '{task}' in {run_dir} (it ended {why})")


def _summary_tasks(run_dir: Path) -> dict[str, Any] | None:
    """The tasks of the run's summary.json, or None while there is none (the run goes on, or died)."""
    try:
        tasks = json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("tasks")
    except (OSError, ValueError, AttributeError):
        return None
    return tasks if isinstance(tasks, dict) else None


def _listed(names: Iterable[str], most: int = 10) -> str:
    names = list(names)
    shown = ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")
    return shown or "none"


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _copy(log: BinaryIO) -> None:
    """Everything written since the last call, to stdout."""
    while chunk := log.read(1 << 20):
        sys.stdout.write(chunk.decode("utf-8", errors="replace"))
    sys.stdout.flush()


def _replaced(log: BinaryIO, path: Path) -> bool:
    """True when `path` is no longer the file `log` reads (moved aside, a new one in its place)."""
    try:
        return os.stat(path).st_ino != os.fstat(log.fileno()).st_ino
    except FileNotFoundError:
        return False
