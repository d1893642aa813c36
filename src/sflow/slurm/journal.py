"""The Slurm jobs and steps a run holds, written to `<run dir>/slurm.jsonl` the moment each is known.

A run killed outright (SIGKILL, the OOM killer, a lost login node) cannot clean up after itself;
this file is how `sflow cancel RUN` finds what it left: the allocations sflow made (`owned`), the
one it ran inside (not owned: never cancelled), the steps it started, the jobs a Python flow
dispatched. One JSON object a line, flushed as it is written, so a crash loses nothing.

A submission is journalled twice: its tag (the job's unique `--comment`) before sbatch or salloc
runs, its job id once they print it. A run killed in between left a job whose id it never
learned; `sflow cancel` finds it in Slurm by that tag.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

import msgspec

JOURNAL_NAME = "slurm.jsonl"

ALLOCATION, STEP, JOB = "allocation", "step", "job"  # what an entry names
SUBMITTING = "submitting"  # a submission under way: its id is the tag its job carries in Slurm


class Entry(msgspec.Struct, frozen=True):
    """One Slurm id a run held: an allocation (`owned` when sflow made it), a step, a dispatched job;
    or the tag of a submission under way (`SUBMITTING`)."""

    kind: str
    slurm_id: str
    owned: bool = True
    info: tuple[tuple[str, Any], ...] = ()

    @property
    def job_id(self) -> str:
        """The job the id belongs to (`123` for step `123.4` or array element `123_4`)."""
        return self.slurm_id.split(".", 1)[0].split("_", 1)[0]

    @property
    def tag(self) -> str | None:
        """The tag its job carries in Slurm (`--comment`), when it was submitted tagged."""
        if self.kind == SUBMITTING:
            return self.slurm_id
        return next((str(value) for key, value in self.info if key == "tag"), None)


class SlurmJournal:
    """Appends entries to a run's journal; without a run directory it only remembers them."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.entries: list[Entry] = []
        self._file: IO[str] | None = None
        self._lock = threading.Lock()  # dispatch executors may add from worker threads

    def add(self, kind: str, slurm_id: str, *, owned: bool = True, **info: Any) -> None:
        """Record `slurm_id` now (idempotent per kind and id); `info` values that are None are left out."""
        info = {key: value for key, value in info.items() if value is not None}
        entry = Entry(kind, str(slurm_id), owned, tuple(sorted(info.items())))
        with self._lock:
            if any(e.kind == kind and e.slurm_id == entry.slurm_id for e in self.entries):
                return
            self.entries.append(entry)
            if self.run_dir is None:
                return
            if self._file is None:
                self._file = open(self.run_dir / JOURNAL_NAME, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            line = {"time": time.time(), "kind": kind, "id": entry.slurm_id, "owned": owned, **info}
            self._file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_journal(run_dir: Path) -> list[Entry]:
    """The entries of a run's journal, in order, once each (none when there is no journal)."""
    try:
        lines = (run_dir / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries: dict[tuple[str, str], Entry] = {}
    for line in lines:
        try:
            data = json.loads(line)
            kind, slurm_id = str(data.pop("kind")), str(data.pop("id"))
        except (ValueError, KeyError, AttributeError):
            continue  # a line cut short by a crash
        owned = bool(data.pop("owned", True))
        data.pop("time", None)
        entries.setdefault((kind, slurm_id), Entry(kind, slurm_id, owned, tuple(sorted(data.items()))))
    return list(entries.values())
