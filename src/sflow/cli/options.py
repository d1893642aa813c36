"""The options several `sflow` commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# One of each path type, shared by every option that takes one: making a click.Path looks its
# name up in the message catalogue (a search of the locale directories), at import.
FILE = click.Path(dir_okay=False)
DIR = click.Path(file_okay=False)
PATH = click.Path()


def files_options(fn: F) -> F:
    """Workflow files: positional and/or repeated -f/--file, merged in order."""
    fn = click.argument("files", nargs=-1, type=FILE)(fn)
    fn = click.option(
        "-f",
        "--file",
        "file_opts",
        multiple=True,
        type=FILE,
        help="Workflow YAML (repeatable).",
    )(fn)
    return fn


def override_options(fn: F) -> F:
    fn = click.option(
        "-s", "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Set a variable (repeatable)."
    )(fn)
    fn = click.option(
        "-a", "--artifact", "artifacts", multiple=True, metavar="NAME=URI", help="Set an artifact."
    )(fn)
    fn = click.option(
        "-M",
        "--missable-tasks",
        "missable_tasks",
        multiple=True,
        metavar="NAME|GLOB",
        help="A task that may be absent after composing several files: dependencies on it are "
        "dropped, with a warning (repeatable; e.g. 'prefill_*').",
    )(fn)
    return fn


def node_options(fn: F) -> F:
    """The node pool of every backend, narrowed from the command line (added to the file's)."""
    for flag, what in (("--include-nodes", "Only these hosts"), ("--exclude-nodes", "Not these hosts")):
        fn = click.option(
            flag,
            multiple=True,
            metavar="HOST[,HOST]",
            help=f"{what}, in every backend (repeatable; commas or spaces between hosts).",
        )(fn)
    return fn


def bulk_options(fn: F) -> F:
    """`-b/--bulk-input CSV`: the workflow files and variable values of a row of a CSV file."""
    return click.option(
        "-b",
        "--bulk-input",
        type=FILE,
        default=None,
        help="CSV of workflow configurations: files in `sflow_config_file`, variables in the other columns.",
    )(fn)


def rows_option(fn: F) -> F:
    return click.option(
        "--row",
        "rows",
        multiple=True,
        metavar="ROWS",
        help="With --bulk-input: only these rows (3, -1 for the last, 1,3,5, or a slice 1:4 / -2:; "
        "repeatable; default: all).",
    )(fn)


output_dir_option = click.option("--output-dir", type=DIR, default="sflow_output", show_default=True)
