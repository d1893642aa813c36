"""`sflow batch`: an sbatch script that runs the workflow inside its allocation."""

from __future__ import annotations

import sys

import click

from sflow.cli.loading import workflow_files
from sflow.cli.options import (
    DIR,
    FILE,
    bulk_options,
    files_options,
    node_options,
    override_options,
    rows_option,
)


@click.command()
@files_options
@override_options
@click.option("-e", "--sbatch-extra-args", "extras", multiple=True, help="Extra sbatch flag (repeatable).")
@click.option("-p", "--partition", default=None)
@click.option("-A", "--account", default=None)
@click.option("--time", default=None, help="Time limit, e.g. 01:00:00.")
@click.option("-N", "--nodes", default=None)
@click.option("-J", "--job-name", default=None)
@click.option("-o", "--sbatch-path", type=FILE, default=None, help="Where to write the script.")
@click.option("--submit", is_flag=True, help="Submit the script and print the job id.")
@bulk_options
@rows_option
@click.option(
    "-B",
    "--bulk-submit",
    multiple=True,
    metavar="PATH",
    help="Workflow files, folders of them or globs: one job each, as it is (repeatable).",
)
@click.option("--output-dir", type=DIR, default=None, help="Where run directories go.")
@node_options
@click.option(
    "--skip-artifact-check",
    is_flag=True,
    help="The job's run takes a missing fs:// artifact path as a warning, not an error.",
)
def batch(
    files: tuple[str, ...],
    file_opts: tuple[str, ...],
    sets: tuple[str, ...],
    artifacts: tuple[str, ...],
    missable_tasks: tuple[str, ...],
    extras: tuple[str, ...],
    partition: str | None,
    account: str | None,
    time: str | None,
    nodes: str | None,
    job_name: str | None,
    sbatch_path: str | None,
    submit: bool,
    bulk_input: str | None,
    rows: tuple[str, ...],
    bulk_submit: tuple[str, ...],
    output_dir: str | None,
    include_nodes: tuple[str, ...],
    exclude_nodes: tuple[str, ...],
    skip_artifact_check: bool,
) -> None:
    """Write an sbatch script that runs the workflow inside its allocation (and submit it).

    With --bulk-input CSV, one script (and job) per row; with --bulk-submit, one per workflow file.
    """
    import functools

    from sflow.cli.batch import batch_command
    from sflow.workflow.backend_args import host_list

    job = functools.partial(
        batch_command,
        extras=extras,
        partition=partition,
        account=account,
        time=time,
        nodes=nodes,
        submit=submit,
        output_dir=output_dir,
        include_nodes=host_list(include_nodes),
        exclude_nodes=host_list(exclude_nodes),
        skip_artifact_check=skip_artifact_check,
    )
    many = bulk_input is not None or bool(bulk_submit)
    if rows and bulk_input is None:
        raise click.UsageError("--row goes with --bulk-input CSV")
    if many and sbatch_path:
        raise click.UsageError("--sbatch-path names one script: bulk scripts go to --output-dir")
    if bulk_input is not None and bulk_submit:
        raise click.UsageError("--bulk-input and --bulk-submit are two ways to give the jobs: use one")
    if not many:
        code = job(
            files=workflow_files(files, file_opts),
            sets=sets,
            artifacts=artifacts,
            missable_tasks=missable_tasks,
            job_name=job_name,
            sbatch_path=sbatch_path,
        )
        sys.exit(code)
    from sflow.cli.bulk import batch_rows, bulk_rows, yaml_files

    if bulk_input is not None:
        chosen = bulk_rows(bulk_input, rows, [*files, *file_opts], sets, artifacts)
    elif files or file_opts:
        raise click.UsageError("--bulk-submit takes its workflow files itself (no -f FILE)")
    else:
        chosen = yaml_files(bulk_submit, sets, artifacts)
    sys.exit(batch_rows(chosen, job, output_dir, missable_tasks, job_name))
