"""The run index: rows written by many processes at once, rebuilt from run folders, never fatal."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sflow.record.history import INDEX_NAME, IndexWarning, RunRow, _connect, list_runs, record_run


def fake_run(output_dir: Path, run_id: str, workflow: str = "wf", started: float = 1.0, **owner) -> Path:
    run_dir = output_dir / run_id
    run_dir.mkdir(parents=True)
    info = {"run_id": run_id, "workflow": workflow, "started": started, **owner}
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def _writer(output_dir: str, worker: int, rows: int) -> None:
    for i in range(rows):
        run_id = f"w{worker}-{i}"
        record_run(Path(output_dir), RunRow(run_id, "wf", Path(output_dir) / run_id, "running"))
        record_run(Path(output_dir), RunRow(run_id, "wf", Path(output_dir) / run_id, "succeeded"))


def test_many_processes_write_at_once_and_no_row_is_lost(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)  # a lock timeout would be a warning: fail on it
        workers = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(6)]
        for p in workers:
            p.start()
        for p in workers:
            p.join(120)
    assert all(p.exitcode == 0 for p in workers)
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        states = dict(conn.execute("SELECT run_id, state FROM runs").fetchall())
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(states) == 150 and set(states.values()) == {"succeeded"}


def test_the_index_is_never_synced_to_disk_a_run_waits_for_no_fsync(tmp_path):
    """What a machine crash loses, `list_runs` rebuilds from the run folders."""
    with _connect(tmp_path) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
    run_dir = fake_run(tmp_path, "lost")
    (tmp_path / INDEX_NAME).unlink()
    assert [row.run_id for row in list_runs(tmp_path)] == ["lost"]
    assert run_dir.exists()


def test_an_index_a_crash_left_unreadable_is_rebuilt_from_the_run_folders(tmp_path):
    fake_run(tmp_path, "kept")
    (tmp_path / INDEX_NAME).write_bytes(b"not sqlite " * 512)  # what an unsynced index may become
    with pytest.warns(IndexWarning, match="rebuilt from the run folders"):
        assert [row.run_id for row in list_runs(tmp_path)] == ["kept"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)  # once rebuilt, the index works again quietly
        assert [row.run_id for row in list_runs(tmp_path)] == ["kept"]


def test_a_run_recorded_over_an_unreadable_index_starts_a_new_one(tmp_path):
    (tmp_path / INDEX_NAME).write_bytes(b"not sqlite " * 512)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)
        record_run(tmp_path, RunRow("r", "wf", tmp_path / "r", "running"))
    with _connect(tmp_path) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [("r",)]


def test_an_unreadable_index_that_cannot_be_deleted_is_a_warning_not_an_error(tmp_path, monkeypatch):
    (tmp_path / INDEX_NAME).write_bytes(b"not sqlite " * 512)

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.warns(IndexWarning, match="is unaffected"):
        record_run(tmp_path, RunRow("r", "wf", tmp_path / "r", "running"))
    fake_run(tmp_path, "kept")
    with pytest.warns(IndexWarning, match="listing the run folders"):
        assert [row.run_id for row in list_runs(tmp_path)] == ["kept"]


def test_an_index_that_cannot_be_written_is_a_warning(tmp_path):
    (tmp_path / INDEX_NAME).mkdir()  # not a database
    with pytest.warns(IndexWarning, match="is unaffected"):
        record_run(tmp_path, RunRow("r", "wf", tmp_path / "r", "running"))


def test_an_output_dir_that_does_not_exist_lists_no_runs_quietly(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)
        assert list_runs(tmp_path / "sflow_output") == []
    assert not (tmp_path / "sflow_output").exists()


def test_listing_adds_runs_the_index_lacks_and_drops_removed_ones(tmp_path):
    first = fake_run(tmp_path, "r1", started=10.0)
    (first / "summary.json").write_text(json.dumps({"ok": True, "elapsed": 2.0, "tasks": {}}))
    fake_run(tmp_path, "r2", started=20.0, host="elsewhere", pid=1)
    rows = list_runs(tmp_path)
    assert [(r.run_id, r.state, r.ended) for r in rows] == [
        ("r1", "succeeded", 12.0),
        ("r2", "running", None),
    ]
    (tmp_path / INDEX_NAME).unlink()  # lost: rebuilt from the folders
    assert [r.run_id for r in list_runs(tmp_path)] == ["r1", "r2"]
    import shutil

    shutil.rmtree(first)
    assert [r.run_id for r in list_runs(tmp_path)] == ["r2"]
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [("r2",)]


def test_a_run_whose_sflow_is_gone_is_listed_as_killed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    fake_run(tmp_path, "r1", host=socket.gethostname(), pid=pid)
    fake_run(tmp_path, "r2", host=socket.gethostname(), pid=os.getpid())
    states = {r.run_id: r.state for r in list_runs(tmp_path)}
    assert states == {"r1": "killed", "r2": "running"}


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path):
    fake_run(tmp_path, "r1", host=socket.gethostname(), pid=os.getpid(), pid_start=1)
    assert list_runs(tmp_path)[0].state == "killed"


def test_a_run_writes_its_row_when_it_ends_and_is_listed_from_its_folder_meanwhile(tmp_path):
    """A run opens no index at its start: listing finds a run still going in its folder."""
    from sflow.engine import RunResult
    from sflow.record.run_dir import RunRecord

    record = RunRecord(tmp_path, "wf", "r1")
    assert not (tmp_path / INDEX_NAME).exists()
    assert [(r.run_id, r.state) for r in list_runs(tmp_path)] == [("r1", "running")]
    record.write_summary(RunResult(units={}))
    record.close()
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("SELECT run_id, state FROM runs").fetchall() == [("r1", "succeeded")]
    assert [(r.run_id, r.state) for r in list_runs(tmp_path)] == [("r1", "succeeded")]
