"""The outputs files of the run directory: a task's outputs.json and a sweep's CSV table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sflow.record.outputs import outputs_table, read_outputs, table_row, write_outputs, write_table_csv


def test_write_outputs(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, {"loss": 0.42, "missing": None})
    assert path == tmp_path / "outputs.json"
    assert json.loads(path.read_text()) == {"loss": 0.42, "missing": None}
    assert [p.name for p in tmp_path.iterdir()] == ["outputs.json"]


def test_sweep_table(tmp_path: Path) -> None:
    rows = [
        table_row(0, {"lr": 0.1, "bs": 32}, {"loss": 0.5, "ok": True}),
        table_row(1, {"lr": 0.01, "bs": 32}, {"loss": None, "meta": {"n": 1}, "lr": 9}),
    ]
    columns, cells = outputs_table(rows)
    assert columns == ["replica_index", "lr", "bs", "loss", "ok", "meta", "output.lr"]
    assert cells[1] == [1, 0.01, 32, None, None, {"n": 1}, 9]
    path = write_table_csv(tmp_path / "sweep" / "outputs.csv", rows)
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == columns
    assert table[1] == ["0", "0.1", "32", "0.5", "true", "", ""]
    assert table[2] == ["1", "0.01", "32", "", "", '{"n": 1}', "9"]


def test_outputs_of_templates_are_written_in_nv_sflows_layout(tmp_path: Path) -> None:
    specs = [{"pattern": "TTFT: {ttft:f} ms", "source": "stdout"}]
    path = write_outputs(tmp_path, {"ttft": [12.5, 13.0]}, nv_layout=("bench", specs))
    assert json.loads(path.read_text()) == {
        "task": "bench",
        "specs": specs,
        "outputs": {"ttft": [12.5, 13.0]},
    }
    assert read_outputs(tmp_path) == {"ttft": [12.5, 13.0]}
    write_outputs(tmp_path, {"task": "t", "specs": [], "outputs": 1, "more": 2})  # flat, whatever its names
    assert read_outputs(tmp_path) == {"task": "t", "specs": [], "outputs": 1, "more": 2}
