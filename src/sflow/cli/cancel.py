"""`sflow cancel RUN`: stop what a run left in Slurm, whether its sflow still runs or died.

A live run on this host is asked to stop first (SIGTERM: the same clean stop as Ctrl-C, its own
release included). Then every Slurm id the run's journal names that is still alive is cancelled,
and so is every job the run was submitting when it died, found by its tag (see
`sflow.slurm.cancel`), whatever the state of its sflow. Running it again changes nothing.
What was done is written to `<run>/cancel.json` and printed, one line per id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

from sflow.record.status import CANCEL_FILE, run_alive
from sflow.slurm.cancel import Cancelled, cancel_entries
from sflow.slurm.journal import read_journal

STOP_WAIT = 60.0  # seconds a live sflow gets to stop by itself before its ids are cancelled


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
    done = asyncio.run(cancel_entries(read_journal(run_dir)))
    lines += [_line(c) for c in done] or [f"{run_dir.name} holds nothing in Slurm"]
    record = {"time": time.time(), "cancelled": [c.entry.slurm_id for c in done if c.outcome == "cancelled"]}
    record["ended"] = [c.entry.slurm_id for c in done if c.outcome == "ended"]
    (run_dir / CANCEL_FILE).write_text(json.dumps(record) + "\n")
    return lines


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
