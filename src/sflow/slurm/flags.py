"""Slurm flags from configuration values: a `--time` by Slurm's rule, extra flags split like a shell.

The salloc of the slurm backend, the steps of the srun launcher and the #SBATCH lines of
`sflow batch` all read these the same way; a bad value is a `BackendError` naming the field.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from sflow.errors import BackendError
from sflow.schema import durations


def slurm_time(value: Any) -> str:
    """A `time:` value as Slurm reads it (`sflow.schema.durations.slurm_time`: bare numbers are minutes)."""
    try:
        return durations.slurm_time(value)
    except ValueError as exc:
        raise BackendError(f"time: {exc}") from None


def split_args(text: Any) -> list[str]:
    """One `extra_args`/`-e` entry as argv words (shell quoting rules)."""
    try:
        return shlex.split(str(text))
    except ValueError as exc:
        raise BackendError(f"cannot parse Slurm flags {text!r}: {exc}") from None


def option_key(words: Sequence[str]) -> str:
    """What makes two Slurm options the same option: the flag and, for `--x=k=v`, the key `k`.

    `--mem=8G`, `--mem 8G` and `--mem=16G` are one option (the last wins); `--export=A=1` and
    `--export=B=2` are two; a bare flag is itself. Short and long spellings of the options a
    backend writes itself (`-p` and `--partition`) are the same option.
    """
    first = words[0]
    if "=" in first:
        first = first.rsplit("=", 1)[0] if first.count("=") > 1 else first.split("=", 1)[0]
    return LONG_NAMES.get(first, first)


LONG_NAMES = {"-A": "--account", "-p": "--partition", "-t": "--time", "-N": "--nodes", "-J": "--job-name"}


def merge_extra_args(recipe: Sequence[str], command_line: Sequence[str]) -> list[str]:
    """`extra_args` of a recipe with those of the command line, one of each option: the command
    line wins; the recipe's options keep their place, options only on the command line follow."""
    merged: dict[str, str] = {}
    for arg in (*recipe, *command_line):
        words = split_args(arg)
        if words:
            merged[option_key(words)] = shlex.join(words)
    return list(merged.values())
