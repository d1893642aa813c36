"""From the workflow options a command was given to the workflow it loads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click


def narrow_nodes(spec: Any, include: Sequence[str], exclude: Sequence[str]) -> None:
    from sflow.workflow.backend_args import add_node_filters, host_list

    if include or exclude:
        add_node_filters(spec, host_list(include), host_list(exclude))


def workflow_files(files: Sequence[str], file_opts: Sequence[str]) -> list[str]:
    out = [*files, *file_opts]
    if not out:
        raise click.UsageError("no workflow file given (use -f FILE or a positional FILE)")
    return out


def one_row(
    files: Sequence[str],
    sets: Sequence[str],
    artifacts: Sequence[str],
    missable: Sequence[str],
    bulk_input: str | None,
    row: int | None,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The files, `--set`, `--artifact` and missable of a command that loads one workflow.

    With `--bulk-input CSV --row N`, row N of the CSV adds its files after `files` and its values
    under the command line's.
    """
    if bulk_input is None:
        if row is not None:
            raise click.UsageError("--row goes with --bulk-input CSV")
        if not files:
            raise click.UsageError("no workflow file given (use -f FILE or a positional FILE)")
        return list(files), list(sets), list(artifacts), list(missable)
    if row is None:
        raise click.UsageError("--bulk-input needs --row N (the row to run; 1 is the first, -1 the last)")
    from sflow.schema.bulk_input import pick, read_rows, resolve_row

    chosen = resolve_row(bulk_input, pick(read_rows(bulk_input), row, bulk_input), files, sets, artifacts)
    return chosen.files, chosen.sets, chosen.artifacts, [*missable, *chosen.missable]


def load(
    files: Sequence[str],
    sets: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    missable: Sequence[str] = (),
) -> Any:
    from sflow.schema import load_workflow

    if missable and len(files) < 2:
        raise click.UsageError("--missable-tasks goes with several workflow files (-f A -f B)")

    return load_workflow(files, sets=sets, artifacts=artifacts, missable_tasks=missable)
