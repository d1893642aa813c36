"""A task's outputs in the run directory: `<task>/outputs.json`, and one CSV table per sweep.

`outputs.json` is the values by name; for a task whose outputs are templates (nv-sflow's form) it
is nv-sflow's layout, which scripts written for nv-sflow read: `{"task", "specs", "outputs"}`.
A sweep's table has one row per replica: its index, its sweep values, its outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_NV_LAYOUT = frozenset({"task", "specs", "outputs"})


def write_outputs(
    task_dir: Path,
    values: Mapping[str, Any],
    nv_layout: tuple[str, list[dict[str, str]]] | None = None,
) -> Path:
    """`<task_dir>/outputs.json`, replaced atomically so a reader never sees half a file;
    `nv_layout` (the task's name and its templates' specs) wraps the values as nv-sflow does."""
    path = task_dir / "outputs.json"
    data: dict[str, Any] = dict(values)
    if nv_layout is not None:
        data = {"task": nv_layout[0], "specs": nv_layout[1], "outputs": data}
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=2, default=str, sort_keys=nv_layout is not None)  # as nv-sflow writes it
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_outputs(task_dir: Path) -> dict[str, Any]:
    """What `write_outputs` wrote in `task_dir` (nothing if it wrote nothing)."""
    try:
        values = json.loads((task_dir / "outputs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(values, dict) and set(values) == _NV_LAYOUT:
        values = values["outputs"]
    return values if isinstance(values, dict) else {}


def table_row(
    replica_index: int | None, sweep: Mapping[str, Any], outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """One replica's row: its index, its sweep values, its outputs (`output.<name>` on a clash)."""
    row: dict[str, Any] = {"replica_index": replica_index, **sweep}
    for name, value in outputs.items():
        row[f"output.{name}" if name in row else name] = value
    return row


def outputs_table(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns in first-seen order, one list of cells per row; None where a row lacks a column)."""
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, [[row.get(col) for col in columns] for row in rows]


def write_table_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """The sweep's table as CSV: empty cells for None, JSON for lists and dicts, true/false."""
    import csv  # here: only a sweep with outputs writes a table

    columns, cells = outputs_table(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_cell(value) for value in row] for row in cells)
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
