"""`--bulk-input CSV`: each row of a CSV file is one workflow — its files and its variable values.

The CSV format is nv-sflow's, so its users' files work unchanged:

- `sflow_config_file` (required): the row's workflow files, separated by spaces (commas are
  accepted as well), relative to the CSV file's folder, merged in order after the files given on
  the command line;
- `job_name` (optional): the name of the row's job or composed file;
- `missable_tasks` (optional): task names (or globs) whose absence must not break the row;
- every other column names a variable (or an artifact) of the row's workflow and sets its value,
  as `--set NAME=VALUE` (`--artifact NAME=URI`) would; an empty cell keeps the workflow's value,
  and the command line's `--set`/`--artifact` win over the CSV.

Rows are numbered from 1, as nv-sflow numbers them; a negative number counts from the end.
Mistakes (a missing column, an unknown variable, a row out of range) name the CSV file, its line
and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.errors import SpecError, UserError

FILES_COLUMN = "sflow_config_file"
RESERVED_COLUMNS = frozenset({FILES_COLUMN, "job_name", "missable_tasks"})


@dataclass(frozen=True)
class CsvRow:
    """One data row as read: its 1-based number, the line it ends on, and its cells."""

    number: int
    line: int
    cells: dict[str, str]


@dataclass
class BulkRow:
    """What one row means for a command: the files to load and the overrides to apply.

    `source` says where it comes from in messages ("jobs.csv:4"), `name` names its job and files.
    """

    number: int
    files: list[str]
    source: str
    name: str
    sets: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    missable: list[str] = field(default_factory=list)
    job_name: str | None = None


def read_rows(csv_path: str | Path) -> list[CsvRow]:
    """The data rows of the CSV, each with at least one workflow file named."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            rows = [CsvRow(i, reader.line_num, _cells(row)) for i, row in enumerate(reader, start=1)]
    except FileNotFoundError:
        raise UserError(f"{path}: no such bulk-input file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read the bulk-input file: {exc}") from None
    if not header:
        raise SpecError("the bulk-input file is empty", where=f"{path}:1")
    if FILES_COLUMN not in header:
        raise SpecError(
            f"the bulk-input file needs a '{FILES_COLUMN}' column (the row's workflow files); "
            f"its columns are: {', '.join(header)}",
            where=f"{path}:1",
        )
    if not rows:
        raise SpecError("the bulk-input file has no data rows", where=f"{path}:2")
    for row in rows:
        if not split_list(row.cells.get(FILES_COLUMN, "")):
            raise SpecError(
                "no workflow file in this row (a row with fewer cells than the header: a missing comma?)",
                where=f"{path}:{row.line}",
                field=FILES_COLUMN,
            )
    return rows


def _cells(row: dict[str | None, Any]) -> dict[str, str]:
    """Cells by column; surplus cells (a row longer than the header) are dropped, missing ones empty."""
    return {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items() if k is not None}


def split_list(text: str) -> list[str]:
    """Names in one cell, separated by spaces and/or commas."""
    return text.replace(",", " ").split()


def pick(rows: Sequence[CsvRow], number: int, csv_path: str | Path) -> CsvRow:
    """Row `number` (1-based; -1 is the last)."""
    index = number - 1 if number > 0 else len(rows) + number
    if number == 0 or not 0 <= index < len(rows):
        raise UserError(f"--row {number}: {csv_path} has {len(rows)} data row(s) (rows count from 1)")
    return rows[index]


def select(selectors: Sequence[str], count: int) -> list[int]:
    """Row numbers chosen by `--row` values, in file order, each once; all rows when there are none.

    A value is a number (`3`, `-1` for the last), a comma-separated list (`1,3,5`) or a slice with
    an exclusive end as in Python (`1:4` is rows 1-3, `1:6:2` rows 1, 3, 5, `-2:` the last two,
    `[1:4]` with brackets too).
    """
    if not selectors:
        return list(range(1, count + 1))
    chosen: set[int] = set()
    for value in selectors:
        for part in value.strip().strip("[]").split(","):
            chosen.update(_numbers(part.strip(), count))
    return sorted(chosen)


def _numbers(part: str, count: int) -> list[int]:
    try:
        if ":" not in part:
            number = int(part)
            index = number - 1 if number > 0 else count + number
            if number == 0 or not 0 <= index < count:
                raise UserError(f"--row {part}: the file has {count} data row(s) (rows count from 1)")
            return [index + 1]
        bounds = [int(b) if b.strip() else None for b in part.split(":")]
    except ValueError:
        raise UserError(f"--row {part!r}: expected a row number, a list (1,3) or a slice (1:4)") from None
    if len(bounds) > 3 or (len(bounds) == 3 and bounds[2] == 0):
        raise UserError(f"--row {part!r}: expected a slice START:END or START:END:STEP")
    start, end, step = [*bounds, None, None][:3]
    zero_based = [b - 1 if b is not None and b > 0 else b for b in (start, end)]
    return [i + 1 for i in range(count)[slice(zero_based[0], zero_based[1], step)]]


def resolve_row(
    csv_path: str | Path,
    row: CsvRow,
    cli_files: Sequence[str] = (),
    cli_sets: Sequence[str] = (),
    cli_artifacts: Sequence[str] = (),
) -> BulkRow:
    """The row's files (the command line's first, each once) and its overrides (the command line's win)."""
    base = Path(csv_path).resolve().parent
    files: list[str] = []
    for name in [*cli_files, *(str(base / f) for f in split_list(row.cells[FILES_COLUMN]))]:
        resolved = str(Path(name).resolve())
        if resolved not in files:
            files.append(resolved)
    variables, artifacts = declared_names(files)
    set_names = {s.partition("=")[0].strip() for s in cli_sets}
    artifact_names = {a.partition("=")[0].strip() for a in cli_artifacts}
    sets, uris = [], []
    for column, value in row.cells.items():
        if column in RESERVED_COLUMNS or not value:
            continue
        if column in variables:
            if column not in set_names:
                sets.append(f"{column}={value}")
        elif column in artifacts:
            if column not in artifact_names:
                uris.append(f"{column}={value}")
        else:
            raise SpecError(
                "this column names no variable or artifact of the row's workflow "
                f"({', '.join(Path(f).name for f in files)})",
                where=f"{csv_path}:{row.line}",
                field=column,
            )
    job_name = row.cells.get("job_name") or None
    return BulkRow(
        number=row.number,
        files=files,
        source=f"{csv_path}:{row.line} (row {row.number})",
        name=safe_name(job_name or f"{Path(csv_path).stem}-row{row.number}"),
        sets=[*sets, *cli_sets],
        artifacts=[*uris, *cli_artifacts],
        missable=split_list(row.cells.get("missable_tasks", "")),
        job_name=job_name,
    )


def declared_names(files: Sequence[str]) -> tuple[set[str], set[str]]:
    """Names of the variables (top level and workflow) and of the artifacts the merged files declare."""
    from sflow.schema.compose import read_and_merge

    data, _ = read_and_merge(files)
    workflow = data.get("workflow")
    variables: set[str] = set()
    for owner in (data, workflow if isinstance(workflow, dict) else {}):
        section = owner.get("variables")
        if isinstance(section, dict):
            variables.update(section)
    artifacts = data.get("artifacts")
    return variables, set(artifacts) if isinstance(artifacts, dict) else set()


def safe_name(name: str) -> str:
    """`name` made fit for a file name (and a job name)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
