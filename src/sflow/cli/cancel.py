"""`sflow cancel RUN`: stop what a run left, locally and in Slurm, whether its sflow still runs or died.

A live run on this host is asked to stop first (SIGTERM: the same clean stop as Ctrl-C, its own
release included). Then the process group of every task recorded as under way that still runs
on this host is stopped (TERM, a grace, KILL), unless its pid now names another process; every
Slurm id the run's journal names that is still alive is cancelled, and so is every job the run
was submitting when it died, found by its tag (see `sflow.slurm.cancel`). Running it again
changes nothing. What was done is written to `<run>/cancel.json` and printed, one line per
process group and per id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

from sflow.proc.groups import group_gone, stop_groups
from sflow.record.status import (
    CANCEL_FILE,
    group_is_ours,
    local_groups,
    read_json,
    read_status,
    run_alive,
    same_machine,
)
from sflow.slurm.cancel import Cancelled, cancel_entries
from sflow.slurm.journal import read_journal

STOP_WAIT = 60.0  # seconds a live sflow gets to stop by itself before its ids are cancelled
GROUP_GRACE = 10.0  # seconds a task's process group gets between TERM and KILL


def cancel_run(run_dir: Path, stop_wait: float = STOP_WAIT) -> list[str]:
    """Stop the run's sflow (same host) and cancel what it holds; the lines to print."""
    lines = []
    pid = _live_owner(run_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        lines.append(f"sent SIGTERM to sflow (pid {pid}), which runs {run_dir.name}")
        deadline = time.monotonic() + stop_wait
        while run_alive(run_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
    done = asyncio.run(cancel_entries(read_journal(run_dir)))  # first: a TERM to srun would end its step
    stopped, local = _stop_local(run_dir)
    lines += local + ([_line(c) for c in done] or [f"{run_dir.name} holds nothing in Slurm"])
    record = {"time": time.time(), "cancelled": [c.entry.slurm_id for c in done if c.outcome == "cancelled"]}
    record["ended"] = [c.entry.slurm_id for c in done if c.outcome == "ended"]
    record["stopped_groups"] = stopped
    (run_dir / CANCEL_FILE).write_text(json.dumps(record) + "\n")
    return lines


def _stop_local(run_dir: Path) -> tuple[list[int], list[str]]:
    """Stop the process groups the run's tasks left on this host: (the pgids stopped, the lines)."""
    owner = read_json(run_dir / "run.json") or {}
    groups = local_groups(read_status(run_dir).tasks.values())
    if groups and not same_machine(owner):
        if owner.get("host") != socket.gethostname():
            return [], [
                f"{len(groups)} task process group(s) of {run_dir.name} run on {owner.get('host')}: left alone"
            ]
        return [], [
            f"{len(groups)} task process group(s) of {run_dir.name} ended when this machine restarted"
        ]
    stops = asyncio.run(stop_groups([g.pgid for g in groups if group_is_ours(g)], GROUP_GRACE))
    lines = []
    for group in groups:
        what = f"task {group.task}: process group {group.pgid}"
        how = stops.get(group.pgid)
        if how is not None and how.signal is not None:
            lines.append(
                f"{what}: stopped by {how.signal}" if how.gone else f"{what}: still there after KILL"
            )
        elif how is not None or group_gone(group.pgid):
            lines.append(f"{what}: already ended")
        else:
            lines.append(f"{what}: left alone, its leader pid is now another process's")
    return [pgid for pgid, how in stops.items() if how.signal is not None], lines


def _live_owner(run_dir: Path) -> int | None:
    """The pid of the run's sflow when it runs on this host."""
    try:
        owner = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname() or not run_alive(run_dir) or owner.get("pid") == os.getpid():
        return None
    return int(owner["pid"])


def _line(done: Cancelled) -> str:
    entry = done.entry
    what = {"allocation": "allocation", "step": "step"}.get(entry.kind, "job")
    if dict(entry.info).get("found_by_tag"):  # its id never reached the journal
        what += " (submitted as sflow died, found by its tag)"
    if done.outcome == "cancelled":
        return f"{what} {entry.slurm_id}: cancelled (was {done.state})"
    return f"{what} {entry.slurm_id}: already ended"
