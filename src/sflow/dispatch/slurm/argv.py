"""Pure builders of Slurm command lines (no I/O, so every flag is unit-testable).

Only resources and names go on the sbatch command line. The payload and the secret travel
in the environment of the sbatch process, which Slurm exports to the job: argv is
world-readable (`ps`, `scontrol show job`) and limited to about 128 KiB.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sflow.dispatch.errors import DispatchConfigError
from sflow.schema.durations import slurm_time

# Resource keys a call (or the executor config) may give, in the order their flags appear.
RESOURCE_FLAGS: dict[str, str] = {
    "partition": "--partition",
    "account": "--account",
    "time": "--time",
    "nodes": "--nodes",
    "cpus_per_task": "--cpus-per-task",
    "mem": "--mem",
    "gpus": "--gpus",
}
RESOURCE_KEYS = frozenset({*RESOURCE_FLAGS, "extra_args"})


def format_time(value: Any) -> str:
    """A Slurm `--time` value by `sflow.schema.durations.slurm_time`'s rule: a bare number is minutes.

    Strings in Slurm's formats pass unchanged; `"90s"`, `"5m"`, `"1h"` are converted.
    """
    try:
        return slurm_time(value)
    except ValueError as exc:
        raise DispatchConfigError(f"Slurm time: {exc}") from None


def merge_resources(defaults: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    """Call resources over executor defaults; `extra_args` of both are concatenated."""
    merged = {k: v for k, v in defaults.items() if v is not None}
    for key, value in call.items():
        if key not in RESOURCE_KEYS:
            raise DispatchConfigError(
                f"unknown Slurm resource key {key!r} (known: {', '.join(sorted(RESOURCE_KEYS))})"
            )
        if key == "extra_args":
            merged["extra_args"] = [*merged.get("extra_args", []), *_str_list(value, key)]
        elif value is not None:
            merged[key] = value
    return merged


def resource_args(resources: Mapping[str, Any]) -> list[str]:
    """The sbatch flags for `resources` (see `RESOURCE_FLAGS`), then `extra_args` verbatim."""
    args: list[str] = []
    for key, flag in RESOURCE_FLAGS.items():
        value = resources.get(key)
        if value is None:
            continue
        text = format_time(value) if key == "time" else str(value)
        args.append(f"{flag}={text}")
    args.extend(_str_list(resources.get("extra_args", []), "extra_args"))
    return args


def job_name(prefix: str, name: str) -> str:
    """`<prefix>-<name>` restricted to characters safe in Slurm job names and file names."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "call"
    return f"{prefix}-{safe}"[:120]


def array_spec(size: int, throttle: int | None = None) -> str:
    """`0-<size-1>` with an optional `%throttle` (elements running at once)."""
    if size < 1:
        raise ValueError("an array needs at least one element")
    spec = f"0-{size - 1}"
    return f"{spec}%{throttle}" if throttle else spec


def build_sbatch_argv(
    sbatch: Sequence[str],
    *,
    name: str,
    output: str,
    command: str,
    resources: Mapping[str, Any],
    array: str | None = None,
    comment: str | None = None,
) -> list[str]:
    """`sbatch --parsable --job-name … --output … [--array …] [resources] --wrap "<command>"`."""
    argv = [*sbatch, f"--job-name={name}", f"--output={output}"]
    if array:
        argv.append(f"--array={array}")
    if comment:
        argv.append(f"--comment={comment}")
    argv.extend(resource_args(resources))
    argv.append(f"--wrap={command}")
    return argv


def wrap_command(command: str | Sequence[str]) -> str:
    """The `--wrap` script body. A list is quoted and `exec`'d so the worker itself gets signals."""
    if isinstance(command, str):
        return command
    return "exec " + shlex.join(command)


def parse_job_id(stdout: str) -> str:
    """The job id printed by `sbatch --parsable` (`<id>` or `<id>;<cluster>`)."""
    for line in stdout.strip().splitlines():
        token = line.strip().split(";", 1)[0]
        if token.isdigit():
            return token
    raise ValueError(f"sbatch printed no job id: {stdout.strip()!r}")


def log_path_for(template: str, job_id: str) -> str:
    """The concrete log path of job `job_id` (`123` or array element `123_4`) from `%j`/`%A_%a`."""
    master, _, index = job_id.partition("_")
    return template.replace("%A", master).replace("%a", index).replace("%j", master)


def _str_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DispatchConfigError(f"Slurm {key!r} must be a list of strings, got {value!r}")
    return [str(v) for v in value]
