"""`sflow batch`: validate, write the sbatch script, print its path, submit when asked."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sflow.errors import SflowError
from sflow.slurm.submit import new_tag
from sflow.workflow.backend_args import add_node_filters
from sflow.workflow.batch import (
    BatchOptions,
    Interrupted,
    build_batch_script,
    default_script_path,
    effective_config,
    sets_file_for,
    without_slurm,
    write_script,
    write_sets,
)
from sflow.workflow.batch import submit as submit_script


def batch_command(
    files: Sequence[str],
    sets: Sequence[str],
    extras: Sequence[str],
    partition: str | None,
    account: str | None,
    time: str | None,
    nodes: str | int | None,
    job_name: str | None,
    sbatch_path: str | None,
    submit: bool,
    output_dir: str | None,
    *,
    artifacts: Sequence[str] = (),
    missable_tasks: Sequence[str] = (),
    include_nodes: Sequence[str] = (),
    exclude_nodes: Sequence[str] = (),
    skip_artifact_check: bool = False,
) -> int:
    """All of `sflow batch`: validate, write the script, print its path, submit when asked.

    Returns the exit code (0, or 1 when sbatch refused the job). A `UserError` (invalid workflow)
    propagates for the CLI to print.
    """
    from sflow.schema import load_workflow

    spec = load_workflow(
        list(files), sets=list(sets), artifacts=list(artifacts), missable_tasks=missable_tasks
    )
    if include_nodes or exclude_nodes:
        add_node_filters(spec, include_nodes, exclude_nodes)
    warning = without_slurm(spec)
    if warning:
        print(f"sflow: warning: {warning}", file=sys.stderr)
    out_dir = Path(output_dir or Path.cwd() / "sflow_output").resolve()
    options = BatchOptions(
        output_dir=out_dir,
        sets=list(sets),
        artifacts=list(artifacts),
        missable_tasks=missable_tasks,
        skip_artifact_check=skip_artifact_check,
        extras=list(extras),
        partition=partition,
        account=account,
        time=time,
        nodes=nodes,
        job_name=job_name,
    )
    name = effective_config(spec, options)["job_name"]
    options.tag = new_tag("sflow-batch")
    path = Path(sbatch_path) if sbatch_path else default_script_path(out_dir, name)
    options.sets_file = sets_file_for(path)
    text = build_batch_script(files, spec, options)
    out_dir.mkdir(parents=True, exist_ok=True)  # sbatch cannot open --output in a missing dir
    if options.sets:
        write_sets(options.sets_file, options.sets)
    else:
        options.sets_file.unlink(missing_ok=True)  # values of an earlier script at this path
    write_script(path, text)
    print(f"sbatch script: {path}")
    if not submit:
        return 0
    try:
        job = submit_script(path, name, options.tag)
    except SflowError as exc:
        print(f"sflow: error: {exc}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as exc:
        created = exc.job if isinstance(exc, Interrupted) else None
        done = (
            f"job {created}, which sbatch had already created, was cancelled"
            if created
            else "no job was created"
        )
        print(f"sflow: interrupted while submitting; {done}", file=sys.stderr)
        return 130
    print(f"Submitted batch job {job}")
    return 0
