"""`sflow run` and `sflow validate`: load a workflow, plan it, and run it or only check it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from sflow.cli.exit_codes import EXIT_OK
from sflow.cli.loading import load, narrow_nodes, one_row, workflow_files
from sflow.cli.options import DIR, bulk_options, files_options, node_options, override_options


def said_all() -> NoReturn:
    """End a command that succeeded and holds a big plan: by `SystemExit`, whose traceback keeps the
    command's locals alive until the `sflow` program ends its process (`console`), so that what the
    plan built is never freed one object at a time (0.2 s for 100,000 tasks). A caller of the click
    group gets exit code 0, as from a return."""
    sys.exit(EXIT_OK)


@click.command()
@files_options
@override_options
@bulk_options
@click.option(
    "--row", type=int, default=None, help="With --bulk-input: the row to run (1 is the first, -1 the last)."
)
@click.option("--dry-run", is_flag=True, help="Print the resolved plan; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("--workspace-dir", type=DIR, default=None, help="Tasks' working directory.")
@click.option("--output-dir", type=DIR, default=None, help="Where run directories go.")
@click.option("--keep-going", is_flag=True, help="Let independent branches finish after a failure.")
@click.option("--tui/--no-tui", default=None, help="Live view (default: on when stdout is a terminal).")
@click.option("--grace", type=float, default=10.0, show_default=True, help="Seconds between TERM and KILL.")
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many tasks of each backend at once (default: the backend's max_concurrent).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--report", "with_report", is_flag=True, help="Write RUN_DIR/report.html when the run ends.")
@click.option(
    "-e",
    "--extra-args",
    "extra_args",
    multiple=True,
    help="Extra flag for every backend, whatever its type: each Slurm backend's salloc (one of each "
    "option, the command line's winning) and each docker backend's `docker run` (after the file's). "
    "Repeatable; --extra-salloc-args and --extra-docker-args reach one type only.",
)
@click.option(
    "--extra-salloc-args",
    "salloc_args",
    multiple=True,
    help="Extra salloc flag for the Slurm backends only (repeatable; wins over -e).",
)
@click.option(
    "--extra-docker-args",
    "docker_args",
    multiple=True,
    help="Extra `docker run` flag for the docker backends only (repeatable; after the file's and -e's, "
    "so it wins where docker takes an option's last value).",
)
@click.option(
    "--wait-for-gpus",
    "wait_for_gpus",
    type=click.IntRange(min=0),
    default=None,
    envvar="SFLOW_WAIT_FOR_GPUS",
    metavar="SECONDS",
    help="Docker backends: wait up to SECONDS (0: for ever) for GPUs another sflow run holds, "
    "instead of failing at once (over the backend's wait_for_gpus; env SFLOW_WAIT_FOR_GPUS).",
)
@node_options
@click.option(
    "--skip-artifact-check",
    is_flag=True,
    help="A missing fs:// artifact path is a warning, not an error (it exists only where tasks run).",
)
@click.option(
    "-t",
    "--task",
    "tasks",
    multiple=True,
    metavar="NAME",
    help="Run only this task and what it needs (repeatable; a task's name covers its replicas).",
)
@click.option("--skip-dependencies", is_flag=True, help="With --task: run the task alone, not what it needs.")
@click.option(
    "--enable-workflow-monitor", is_flag=True, help="Sample every node for the whole run (all scopes)."
)
@click.option(
    "--enable-task-monitor",
    "monitored",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Sample these tasks' nodes while they run (all scopes; repeatable).",
)
@click.option(
    "--resume",
    metavar="RUN",
    default=None,
    help="Keep what RUN (a run id, a run directory or 'latest') completed and left unchanged; run the rest.",
)
def run(
    files: tuple[str, ...],
    file_opts: tuple[str, ...],
    sets: tuple[str, ...],
    artifacts: tuple[str, ...],
    missable_tasks: tuple[str, ...],
    bulk_input: str | None,
    row: int | None,
    dry_run: bool,
    as_json: bool,
    workspace_dir: str | None,
    output_dir: str | None,
    keep_going: bool,
    tui: bool | None,
    grace: float,
    max_concurrent: int | None,
    quiet: bool,
    with_report: bool,
    extra_args: tuple[str, ...],
    salloc_args: tuple[str, ...],
    docker_args: tuple[str, ...],
    wait_for_gpus: int | None,
    include_nodes: tuple[str, ...],
    exclude_nodes: tuple[str, ...],
    skip_artifact_check: bool,
    tasks: tuple[str, ...],
    skip_dependencies: bool,
    enable_workflow_monitor: bool,
    monitored: tuple[str, ...],
    resume: str | None,
) -> None:
    """Run a workflow."""
    from sflow.cli.run import dry_run_plan, run_workflow
    from sflow.lifecycle.settings import RunSettings
    from sflow.workflow.run_plan import plan_run

    if skip_dependencies and not tasks:
        raise click.UsageError("--skip-dependencies needs --task NAME")
    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    from sflow.workflow.artifact_check import check_artifacts
    from sflow.workflow.backend_args import add_extra_args, set_wait_for_gpus

    spec = load(*one_row([*files, *file_opts], sets, artifacts, missable_tasks, bulk_input, row))
    add_extra_args(spec, extra_args, salloc_args, docker_args)
    set_wait_for_gpus(spec, wait_for_gpus)
    narrow_nodes(spec, include_nodes, exclude_nodes)
    try:
        spec.enable_monitors(
            enable_workflow_monitor, [n for names in monitored for n in names.split(",") if n]
        )
    except KeyError as exc:
        raise click.UsageError(f"--enable-task-monitor: {exc.args[0]}") from None
    workspace = Path(workspace_dir or Path.cwd()).resolve()
    check_artifacts(spec, workspace, strict=not (dry_run or skip_artifact_check))
    settings = RunSettings(
        workspace_dir=workspace,
        output_dir=Path(output_dir).resolve() if output_dir else workspace / "sflow_output",
        keep_going=keep_going,
        grace=grace,
    )
    run_plan = plan_run(
        spec,
        settings.output_path(),
        tasks=tasks,
        with_deps=not skip_dependencies,
        resume=resume,
        fingerprints=not dry_run,
    )
    if as_json:
        import json

        from sflow.workflow.dry_run import plan_data

        data = plan_data(spec, settings.workspace_path(), settings.output_path(), run_plan)
        click.echo(json.dumps(data, indent=1))
        said_all()
    plan = dry_run_plan(spec, settings, run_plan)  # renders every task once: a mistake shows now
    if dry_run:
        # a plan without escape sequences has none to strip for a pipe or file: skip that pass (a
        # piece starts where a line does, so stripping piece by piece strips what the whole holds)
        color = None if any("\x1b" in piece for piece in plan) else True
        for piece in plan:
            click.echo(piece, nl=False, color=color)
        click.echo()
        said_all()
    progress = "none" if quiet else ("live" if tui else "plain" if tui is False else "auto")
    code = run_workflow(
        spec, settings, progress, run_plan, max_concurrent=max_concurrent, with_report=with_report
    )
    sys.exit(code)


@click.command()
@files_options
@override_options
def validate(
    files: tuple[str, ...],
    file_opts: tuple[str, ...],
    sets: tuple[str, ...],
    artifacts: tuple[str, ...],
    missable_tasks: tuple[str, ...],
) -> None:
    """Check workflow files without running anything: structure, placement and every expression."""
    from sflow.workflow.dry_run import describe_plan
    from sflow.workflow.run_plan import plan_run

    all_files = workflow_files(files, file_opts)
    spec = load(all_files, sets, artifacts, missable_tasks)
    workspace = Path.cwd()
    run_plan = plan_run(spec, workspace / "sflow_output", fingerprints=False)
    describe_plan(spec, workspace, workspace / "sflow_output", run_plan)
    count = len(run_plan.plan.instances)
    click.echo(f"{', '.join(all_files)}: ok (workflow '{spec.workflow.name}', {count} task(s))")
    said_all()
