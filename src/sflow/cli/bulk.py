"""`--bulk-input CSV` on `compose` and `batch`, and `batch --bulk-submit`: one workflow per row/file.

Every row is checked before anything is written or submitted: a mistake in row 7 must not leave
rows 1-6 queued. Each bulk `batch` writes its scripts into a folder of its own
(`<output-dir>/bulk-<time>/`), so a later bulk never rewrites the values a queued job will read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sflow.errors import SpecError, UserError
from sflow.schema.bulk_input import BulkRow, read_rows, resolve_row, safe_name, select


def bulk_rows(
    csv_path: str,
    selectors: Sequence[str],
    cli_files: Sequence[str],
    sets: Sequence[str],
    artifacts: Sequence[str],
) -> list[BulkRow]:
    """The chosen rows of the CSV, resolved (files and overrides)."""
    rows = read_rows(csv_path)
    chosen = select(selectors, len(rows))
    return [resolve_row(csv_path, rows[n - 1], cli_files, sets, artifacts) for n in chosen]


def check_all(rows: Sequence[BulkRow], missable: Sequence[str]) -> None:
    """Load every row's workflow; the mistakes of all rows together, each under its row's source."""
    from sflow.schema import load_workflow

    problems = []
    for row in rows:
        try:
            load_workflow(
                row.files,
                sets=row.sets,
                artifacts=row.artifacts,
                missable_tasks=[*missable, *row.missable],
            )
        except UserError as exc:
            problems.append(f"{row.source}: {exc}")
    if problems:
        raise UserError("\n".join(problems))


def compose_rows(
    rows: Sequence[BulkRow],
    missable: Sequence[str],
    out_dir: Path,
    dump: Callable[[dict[str, Any]], str],
) -> list[Path]:
    """Each row's merged workflow written as `<out_dir>/<row name>.yaml`; the paths."""
    import warnings

    from sflow.schema.compose import ComposeWarning, compose_documents

    check_all(rows, missable)
    written = []
    for row in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ComposeWarning)  # shown while checking
            merged = compose_documents(row.files, row.sets, row.artifacts, [*missable, *row.missable])
        path = out_dir / f"{row.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(merged), encoding="utf-8")
        written.append(path)
    return written


def yaml_files(paths: Sequence[str], sets: Sequence[str], artifacts: Sequence[str]) -> list[BulkRow]:
    """`--bulk-submit` paths as one "row" each: files, folders (their *.yaml, *.yml) and globs."""
    import glob

    found: list[Path] = []
    for text in paths:
        path = Path(text)
        matches = [path] if path.exists() else [Path(m) for m in sorted(glob.glob(text))]
        if not matches:
            raise UserError(f"--bulk-submit {text}: no such file, folder or match")
        for match in matches:
            if match.is_dir():
                found += sorted(p for p in match.iterdir() if p.suffix in (".yaml", ".yml"))
            else:
                found.append(match)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"--bulk-submit {' '.join(paths)}: no workflow file (*.yaml, *.yml) found")
    return [
        BulkRow(i, [str(p)], str(p), safe_name(p.stem), list(sets), list(artifacts))
        for i, p in enumerate(unique, start=1)
    ]


def batch_rows(
    rows: Sequence[BulkRow],
    job_batch: Callable[..., int],
    output_dir: str | None,
    missable: Sequence[str],
    job_name: str | None,
) -> int:
    """One sbatch script (and job, with --submit) per row; stops at a Ctrl-C; the exit code.

    `job_batch` is the single-workflow `sflow batch` with its Slurm options already bound.
    """
    check_all(rows, missable)
    out = Path(output_dir or Path.cwd() / "sflow_output").resolve()
    folder = _new_folder(out)
    failed = 0
    for row in rows:
        print(f"{row.source}:")
        code = job_batch(
            files=row.files,
            sets=row.sets,
            artifacts=row.artifacts,
            missable_tasks=[*missable, *row.missable],
            job_name=job_name or row.job_name,
            sbatch_path=str(folder / f"{row.name}.sbatch"),
        )
        if code == 130:
            return code
        failed += code != 0
    done = len(rows) - failed
    print(
        f"{done} of {len(rows)} job script(s) written to {folder}" + (f"; {failed} failed" if failed else "")
    )
    return 1 if failed else 0


def _new_folder(out: Path) -> Path:
    """`<out>/bulk-<time>`, made now, never one an earlier bulk used."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = out / (f"bulk-{stamp}" if n == 0 else f"bulk-{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise SpecError(f"cannot make a new folder under {out}")
