"""The sbatch script of `sflow batch`: a workflow run inside its own Slurm job, and its submission.

Why it looks like this:
- The `#SBATCH` lines come from the workflow's slurm backend (the same options `salloc` would
  get), then `-e` extras, then command-line overrides: later lines win in sbatch, so the most
  specific source wins. Inside the job, the slurm backend sees `SLURM_JOB_ID` and reuses the
  allocation instead of asking for another.
- The body runs `<this interpreter> -m sflow run ...` with absolute paths: the job uses exactly
  the sflow that generated it (same venv, nothing downloaded at run time), and `exec` makes the
  job's exit code the workflow's (0 ok, 1 failed, 2 invalid, 130/143 interrupted by
  SIGINT/SIGTERM).
- `--set` values are often secrets (tokens): they never go on a command line (any user can read
  it with `ps`) nor into the script. They are written to `<script>.sets`, mode 0600, beside the
  script (mode 0700), and the job runs `<python> -m sflow.cli.batch_job --set-file <that file> run ...`,
  which reads them and runs `sflow run` in the same process with them.
- The first `#SBATCH` line is a unique `--comment`: a Ctrl-C while `--submit`'s sbatch runs
  finds the job sbatch may already have created by it, and scancels it (`sflow.slurm.submit`).
- Backend fields may be `${{ }}` expressions (`partition: ${{ variables.PARTITION }}`): they are
  rendered as `sflow run` renders them (workflow, artifacts, top-level variables, `--set`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.backends.slurm import allocation_options, config_value
from sflow.errors import SflowError
from sflow.slurm.flags import merge_extra_args
from sflow.slurm.submit import TaggedSubmission

if TYPE_CHECKING:
    from sflow.schema.workflow import WorkflowSpec

BACKEND_FIELDS = (
    "job_name",
    "account",
    "partition",
    "time",
    "nodes",
    "gpus_per_node",
    "include_nodes",
    "exclude_nodes",
    "extra_args",
)


@dataclass
class BatchOptions:
    """What `sflow batch` adds to the workflow's own Slurm settings."""

    output_dir: Path
    sets: Sequence[str] = ()
    artifacts: Sequence[str] = ()
    missable_tasks: Sequence[str] = ()
    skip_artifact_check: bool = False  # the job's run only warns of a missing fs:// artifact
    extras: Sequence[str] = ()
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    nodes: str | int | None = None
    job_name: str | None = None
    submit_dir: Path = field(default_factory=Path.cwd)
    python: str = field(default_factory=lambda: sys.executable)
    sets_file: Path | None = None  # where `sets` are stored for the job (required when there are any)
    tag: str | None = None  # the job's `--comment`: how an interrupted submission finds its job again


def slurm_backend_config(spec: Any) -> Any | None:
    """The workflow's slurm backend (the default one if several), or None when it has none."""
    backends = getattr(spec, "backends", None) or {}
    items = list(backends.values()) if isinstance(backends, Mapping) else list(backends)
    slurm = [b for b in items if config_value(b, "type") == "slurm"]
    slurm.sort(key=lambda b: not config_value(b, "default", False))
    return slurm[0] if slurm else None


def without_slurm(spec: WorkflowSpec) -> str | None:
    """Why a job of this workflow would use Slurm for nothing but one node, or None.

    A workflow whose tasks all run on local backends runs them as processes on the job's
    first node: possible, but more often a laptop's workflow sent to a cluster by mistake.
    """
    if any(spec.backend_type(spec.backend_for(task)) == "slurm" for task in spec.workflow.tasks):
        return None
    return (
        f"no task of workflow '{spec.workflow.name}' runs on a slurm backend: in the job they run "
        "as local processes on the allocation's first node, and the job gets only the Slurm options "
        "of the command line; add a backend with `type: slurm` (the default one, or named by the "
        "tasks' `backend:`) to run them as job steps"
    )


def rendered_backend(spec: Any, backend: Any, options: BatchOptions) -> Any:
    """The backend with its `${{ }}` fields rendered as `sflow run` will render them in the job.

    Only a loaded `WorkflowSpec` can be rendered; anything else is returned as it is.
    """
    from sflow.schema.workflow import WorkflowSpec

    if backend is None or not isinstance(spec, WorkflowSpec):
        return backend
    from sflow.workflow.context import base_context, rendered_backend_config

    workspace = options.submit_dir.resolve()  # the job cds there and runs without --workspace-dir
    run_dir = options.output_dir.resolve() / "<run-id>"
    context = base_context(spec, workspace, run_dir, write_artifacts=False)
    return rendered_backend_config(spec, config_value(backend, "name"), context)


def effective_config(spec: Any, options: BatchOptions) -> dict[str, Any]:
    """Backend fields (rendered) with the command line's -p/-A/--time/-N/-J on top."""
    backend = rendered_backend(spec, slurm_backend_config(spec), options)
    config = {name: config_value(backend, name) for name in BACKEND_FIELDS} if backend else {}
    workflow = getattr(getattr(spec, "workflow", None), "name", None)
    config["job_name"] = options.job_name or config.get("job_name") or workflow or "sflow"
    overrides = {
        "partition": options.partition,
        "account": options.account,
        "time": options.time,
        "nodes": options.nodes,
    }
    config.update({k: v for k, v in overrides.items() if v not in (None, "")})
    return config


def sbatch_lines(spec: Any, options: BatchOptions) -> list[str]:
    """The `#SBATCH` lines: the tag, backend options, `-e` extras, then the job's output file.

    The tag comes first: a `--comment` of the user's, later, wins (only Ctrl-C cleanup needs it).
    """
    groups = [[f"--comment={options.tag}"]] if options.tag else []
    config = effective_config(spec, options)
    config["extra_args"] = merge_extra_args(config.get("extra_args") or (), options.extras)
    groups += allocation_options(config)
    output = options.output_dir.resolve() / "sflow-%j.out"
    groups.append([f"--output={output}"])
    return [f"#SBATCH {shlex.join(words)}" for words in groups]


def run_command(files: Sequence[str | Path], options: BatchOptions) -> list[str]:
    """`<python> -m sflow run -f <abs files> --output-dir <abs dir>`.

    With `--set` values: `<python> -m sflow.cli.batch_job --set-file <sets_file> run ...` instead, so
    the values stay in their 0600 file (see `main`).
    """
    if options.sets and options.sets_file is None:
        raise ValueError("--set values need a sets_file: they must not appear on a command line")
    if options.sets:
        assert options.sets_file is not None
        argv = [
            options.python,
            "-m",
            "sflow.cli.batch_job",
            "--set-file",
            str(options.sets_file.resolve()),
            "run",
        ]
    else:
        argv = [options.python, "-m", "sflow", "run"]
    for f in files:
        argv += ["-f", str(Path(f).resolve())]
    for artifact in options.artifacts:
        argv += ["--artifact", artifact]
    for pattern in options.missable_tasks:
        argv += ["--missable-tasks", pattern]
    if options.skip_artifact_check:
        argv.append("--skip-artifact-check")
    return [*argv, "--output-dir", str(options.output_dir.resolve())]


def build_batch_script(files: Sequence[str | Path], spec: Any, options: BatchOptions) -> str:
    """The whole sbatch script (pure but for resolving relative paths against the cwd)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sources = ", ".join(str(Path(f).resolve()) for f in files)
    return "\n".join(
        [
            "#!/bin/bash",
            *sbatch_lines(spec, options),
            f"# Generated by `sflow batch` on {stamp} from {sources}.",
            "# Inside this job the slurm backend reuses the allocation (no second salloc).",
            f"cd {shlex.quote(str(options.submit_dir.resolve()))} || exit 1",
            f"exec {shlex.join(run_command(files, options))}",
            "",
        ]
    )


def parse_sbatch_job_id(stdout: str) -> str:
    """The job id from `sbatch --parsable` ("123" or "123;cluster")."""
    job = stdout.strip().split(";")[0]
    if not job.isdigit():
        raise SflowError(f"sbatch gave no job id: {stdout.strip() or '(no output)'}")
    return job


async def submit_async(script_path: str | Path, job_name: str, tag: str) -> str:
    """`sbatch --parsable <script>` without blocking the loop; the job id.

    Cancelled (Ctrl-C) while sbatch runs, the job it may have created is found by its tag and
    scancelled before the cancellation goes on; `Interrupted` says which job that was.
    """
    submission = TaggedSubmission(job_name, tag)
    try:
        result = await submission.submit(["sbatch", "--parsable", str(script_path)])
    except asyncio.CancelledError:
        raise Interrupted(submission.cancelled_job) from None
    return parse_sbatch_job_id(result.stdout)


class Interrupted(Exception):
    """Ctrl-C during the submission; `job` is the job it had created and that was scancelled."""

    def __init__(self, job: str | None) -> None:
        super().__init__(job)
        self.job = job


def submit(script_path: str | Path, job_name: str, tag: str) -> str:
    """Submit the script (from synchronous code such as the CLI); the job id."""
    return asyncio.run(submit_async(script_path, job_name, tag))


def default_script_path(output_dir: Path, job_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_name)
    return output_dir / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"


def sets_file_for(script: Path) -> Path:
    """Where the `--set` values of the job run by `script` are stored: beside it."""
    return script.with_name(script.name + ".sets")


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, text, 0o700)
    return path


def write_sets(path: Path, sets: Sequence[str]) -> Path:
    """The `--set` values as a JSON list, readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, json.dumps(list(sets)) + "\n", 0o600)
    return path


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode`, also when the file existed with a looser one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), mode)
        out.write(text)
