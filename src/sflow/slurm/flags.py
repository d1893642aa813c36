"""Slurm flags from configuration values: a `--time` by Slurm's rule, extra flags split like a shell.

The salloc of the slurm backend, the steps of the srun launcher and the #SBATCH lines of
`sflow batch` all read these the same way; a bad value is a `BackendError` naming the field.
"""

from __future__ import annotations

import shlex
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
