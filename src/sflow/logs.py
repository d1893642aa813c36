"""`sflow logs`: find a run directory and print (or follow) one of its logs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sflow.errors import UserError
from sflow.record import safe_name


def find_run(output_dir: Path, ref: str) -> Path:
    """A run directory from a path, a run id (or its unique prefix) or 'latest'."""
    as_path = Path(ref)
    if as_path.is_dir() and (as_path / "sflow.log").exists():
        return as_path
    runs = (
        sorted(p for p in output_dir.glob("*") if (p / "sflow.log").exists()) if output_dir.is_dir() else []
    )
    if not runs:
        raise UserError(f"no runs under {output_dir}")
    if ref == "latest":
        return runs[-1]
    matches = [p for p in runs if p.name.startswith(ref)]
    if len(matches) != 1:
        raise UserError(f"run '{ref}' {'is ambiguous' if matches else 'not found'} under {output_dir}")
    return matches[0]


def print_log(run_dir: Path, task: str | None, follow: bool = False) -> None:
    path = run_dir / "sflow.log" if task is None else run_dir / safe_name(task) / f"{safe_name(task)}.log"
    if not path.exists() and not follow:
        known = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
        raise UserError(f"no log for task '{task}' in {run_dir} (tasks: {', '.join(known) or 'none'})")
    offset = 0
    while True:
        ended = (run_dir / "summary.json").exists()  # checked before the read: no last bytes lost
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
        if not follow or ended:
            return
        time.sleep(0.2)
