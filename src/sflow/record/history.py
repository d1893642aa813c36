"""The run index: one row per run under an output directory, in `<output-dir>/.runs.db`.

Run directories are the truth; the index makes listing fast and is rebuilt from them for any
run it lacks (a run still going, as a run writes its row when it ends; a run from before the
index, or one whose write was lost). Several runs write to
it at once: SQLite in WAL mode, a busy timeout and one short transaction per write. A run
never fails or waits long because of it: an index error is a warning, and the run goes on.
"""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import msgspec

from sflow.record.status import CANCEL_FILE, read_json, read_status

INDEX_NAME = ".runs.db"  # hidden, and sorted before the run folders: they stay what `ls` shows
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's write to finish

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    started REAL,
    ended REAL,
    counts TEXT NOT NULL DEFAULT '{}',
    resumed_from TEXT,
    owner TEXT NOT NULL DEFAULT '{}'
)
"""
_COLUMNS = ("run_id", "workflow", "run_dir", "state", "started", "ended", "counts", "resumed_from", "owner")


class IndexWarning(UserWarning):
    """The run index could not be read or written; runs are unaffected."""


class RunRow(msgspec.Struct):
    """One run as the index lists it."""

    run_id: str
    workflow: str
    run_dir: Path
    state: str  # running, succeeded, failed, interrupted, killed, cancelled
    started: float | None = None
    ended: float | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    resumed_from: str | None = None
    owner: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else (time.time() if self.state == "running" else None)
        return None if end is None else max(0.0, end - self.started)

    def _values(self) -> tuple[Any, ...]:
        return (
            self.run_id,
            self.workflow,
            str(self.run_dir),
            self.state,
            self.started,
            self.ended,
            json.dumps(self.counts),
            self.resumed_from,
            json.dumps(self.owner),
        )


@contextmanager
def _connect(output_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode; each `with conn:` block below is one short transaction."""
    with closing(sqlite3.connect(output_dir / INDEX_NAME, timeout=BUSY_TIMEOUT)) as conn:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Never synced: every run writes its row twice, and a sync costs it tens of milliseconds. The
        # index only mirrors the run folders; `list_runs` rebuilds what a machine crash loses or
        # leaves unreadable.
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            conn.execute(_SCHEMA)
        yield conn


def record_run(output_dir: Path, row: RunRow) -> None:
    """Add or update a run's row; a failure is a warning, never an error of the run."""
    try:
        with _connect(output_dir) as conn, conn:
            _upsert(conn, [row])
    except (sqlite3.Error, OSError) as exc:
        if _drop_if_corrupt(output_dir, exc):  # a new index: `list_runs` adds the other runs back
            return record_run(output_dir, row)
        warnings.warn(
            f"run index {output_dir / INDEX_NAME}: {exc} (run {row.run_id} is unaffected)",
            IndexWarning,
            stacklevel=2,
        )


def _drop_if_corrupt(output_dir: Path, exc: BaseException) -> bool:
    """Delete an index a machine crash left unreadable (it is never synced); the caller rebuilds it.
    False when the index is not corrupt or cannot be deleted: the caller's warning stands."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    corrupt = (
        code in _CORRUPT if code is not None else any(w in str(exc) for w in ("malformed", "not a database"))
    )
    if not (isinstance(exc, sqlite3.DatabaseError) and corrupt):
        return False
    try:
        for suffix in ("", "-wal", "-shm"):
            (output_dir / (INDEX_NAME + suffix)).unlink(missing_ok=True)
    except OSError:
        return False
    return True


def _upsert(conn: sqlite3.Connection, rows: Iterable[RunRow]) -> None:
    marks = ", ".join("?" for _ in _COLUMNS)
    conn.executemany(
        f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) VALUES ({marks})", [r._values() for r in rows]
    )


def list_runs(output_dir: Path) -> list[RunRow]:
    """Every run under `output_dir`, oldest first, brought up to date with the run directories.

    Rows are added for runs the index lacks and for runs it still lists as running that have
    ended since; rows of deleted run directories are dropped. A run whose sflow is gone
    without a summary is listed as `killed`, and one `sflow cancel` stopped as `cancelled`.
    """
    if not output_dir.is_dir():
        return []  # no run yet: nothing to index, and no folder to put an index in
    on_disk = {p.name: p for p in _run_dirs(output_dir)}
    try:
        with _connect(output_dir) as conn:
            indexed = {row.run_id: row for row in _select(conn)}
            stale = [r for r in indexed if r not in on_disk]
            fresh = [
                _row_from_dir(path)
                for name, path in on_disk.items()
                if name not in indexed or _may_have_changed(indexed[name], path)
            ]
            with conn:
                conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in stale])
                _upsert(conn, [r for r in fresh if r.state != "running" or r.run_id not in indexed])
    except (sqlite3.Error, OSError) as exc:
        if _drop_if_corrupt(output_dir, exc):
            warnings.warn(
                f"run index {output_dir / INDEX_NAME}: {exc}; rebuilt from the run folders",
                IndexWarning,
                stacklevel=2,
            )
            return list_runs(output_dir)
        warnings.warn(
            f"run index {output_dir / INDEX_NAME}: {exc}; listing the run folders", IndexWarning, stacklevel=2
        )
        return sorted((_row_from_dir(p) for p in on_disk.values()), key=_start_key)
    rows = {name: row for name, row in indexed.items() if name in on_disk}
    rows.update({row.run_id: row for row in fresh})
    return sorted(rows.values(), key=_start_key)


def _may_have_changed(row: RunRow, run_dir: Path) -> bool:
    """A row to read again from its folder: the run was going, or `sflow cancel` stopped it since."""
    if row.state == "running":
        return True
    return row.state in ("interrupted", "killed") and (run_dir / CANCEL_FILE).exists()


def forget(output_dir: Path, run_ids: Iterable[str]) -> None:
    """Drop the rows of runs whose directories were removed."""
    try:
        with _connect(output_dir) as conn, conn:
            conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])
    except (sqlite3.Error, OSError) as exc:
        warnings.warn(f"run index {output_dir / INDEX_NAME}: {exc}", IndexWarning, stacklevel=2)


def _select(conn: sqlite3.Connection) -> list[RunRow]:
    out = []
    for values in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs"):
        data = dict(zip(_COLUMNS, values, strict=True))
        data["run_dir"] = Path(data["run_dir"])
        data["counts"] = json.loads(data["counts"] or "{}")
        data["owner"] = json.loads(data["owner"] or "{}")
        out.append(RunRow(**data))
    return out


def _run_dirs(output_dir: Path) -> list[Path]:
    return [p for p in output_dir.iterdir() if (p / "run.json").is_file()]


def _row_from_dir(run_dir: Path) -> RunRow:
    """A row read from the run directory itself (the truth the index caches)."""
    status = read_status(run_dir)
    return RunRow(
        run_id=run_dir.name,
        workflow=status.workflow,
        run_dir=run_dir,
        state=status.state,
        started=status.started,
        ended=status.ended,
        counts=status.counts(),
        resumed_from=status.resumed_from,
        owner=status.owner,
    )


def row_of_owner(run_dir: Path, state: str, counts: dict[str, int]) -> RunRow:
    """The row a run writes about itself when it ends."""
    owner = read_json(run_dir / "run.json") or {}
    return RunRow(
        run_id=run_dir.name,
        workflow=str(owner.get("workflow", "")),
        run_dir=run_dir,
        state=state,
        started=owner.get("started"),
        ended=time.time(),
        counts=counts,
        resumed_from=owner.get("resumed_from"),
        owner=owner,
    )


def _start_key(row: RunRow) -> tuple[float, str]:
    return (row.started or 0.0, row.run_id)
