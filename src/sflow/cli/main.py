"""The `sflow` command: a thin face over the library.

Heavy modules (the workflow models, Jinja, rich, asyncio machinery) are imported inside the
commands, so `sflow --help` stays fast. Every user mistake becomes one line on stderr
and exit code 2; a failed workflow exits 1; Ctrl-C exits 130 and SIGTERM 143.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# One of each path type, shared by every option that takes one: making a click.Path looks its
# name up in the message catalogue (a search of the locale directories), at import.
_FILE = click.Path(dir_okay=False)
_DIR = click.Path(file_okay=False)
_PATH = click.Path()


def _files_options(fn: F) -> F:
    """Workflow files: positional and/or repeated -f/--file, merged in order."""
    fn = click.argument("files", nargs=-1, type=_FILE)(fn)
    fn = click.option(
        "-f",
        "--file",
        "file_opts",
        multiple=True,
        type=_FILE,
        help="Workflow YAML (repeatable).",
    )(fn)
    return fn


def _override_options(fn: F) -> F:
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


def _node_options(fn: F) -> F:
    """The node pool of every backend, narrowed from the command line (added to the file's)."""
    for flag, what in (("--include-nodes", "Only these hosts"), ("--exclude-nodes", "Not these hosts")):
        fn = click.option(
            flag,
            multiple=True,
            metavar="HOST[,HOST]",
            help=f"{what}, in every backend (repeatable; commas or spaces between hosts).",
        )(fn)
    return fn


def _add_node_filters(spec: Any, include: Sequence[str], exclude: Sequence[str]) -> None:
    from sflow.workflow.backend_args import add_node_filters, host_list

    if include or exclude:
        add_node_filters(spec, host_list(include), host_list(exclude))


def _all_files(files: Sequence[str], file_opts: Sequence[str]) -> list[str]:
    out = [*files, *file_opts]
    if not out:
        raise click.UsageError("no workflow file given (use -f FILE or a positional FILE)")
    return out


def _bulk_options(fn: F) -> F:
    """`-b/--bulk-input CSV`: the workflow files and variable values of a row of a CSV file."""
    return click.option(
        "-b",
        "--bulk-input",
        type=_FILE,
        default=None,
        help="CSV of workflow configurations: files in `sflow_config_file`, variables in the other columns.",
    )(fn)


def _rows_option(fn: F) -> F:
    return click.option(
        "--row",
        "rows",
        multiple=True,
        metavar="ROWS",
        help="With --bulk-input: only these rows (3, -1 for the last, 1,3,5, or a slice 1:4 / -2:; "
        "repeatable; default: all).",
    )(fn)


def _one_row(
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


def _load(
    files: Sequence[str],
    sets: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    missable: Sequence[str] = (),
) -> Any:
    from sflow.schema import load_workflow

    if missable and len(files) < 2:
        raise click.UsageError("--missable-tasks goes with several workflow files (-f A -f B)")

    return load_workflow(files, sets=sets, artifacts=artifacts, missable_tasks=missable)


def _said_all() -> NoReturn:
    """End a command that succeeded and holds a big plan: by `SystemExit`, whose traceback keeps the
    command's locals alive until the `sflow` program ends its process (`console`), so that what the
    plan built is never freed one object at a time (0.2 s for 100,000 tasks). A caller of the click
    group gets exit code 0, as from a return."""
    sys.exit(EXIT_OK)


def _fail_user(exc: Exception) -> None:
    click.echo(f"sflow: error: {exc}", err=True)
    sys.exit(EXIT_USAGE)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """sflow's own warnings (a later file overriding an earlier one) as one plain line on stderr."""
    if category.__module__.split(".")[0] == "sflow":
        click.echo(f"sflow: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


class _Group(click.Group):
    """Turns user errors raised anywhere below into one line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        from sflow.errors import UserError

        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except UserError as exc:
            _fail_user(exc)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sflow", prog_name="sflow")
def main() -> None:
    """Describe a DAG of tasks once; run it on a laptop or on a Slurm cluster."""


@main.command()
@_files_options
@_override_options
@_bulk_options
@click.option(
    "--row", type=int, default=None, help="With --bulk-input: the row to run (1 is the first, -1 the last)."
)
@click.option("--dry-run", is_flag=True, help="Print the resolved plan; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as JSON.")
@click.option("--workspace-dir", type=_DIR, default=None, help="Tasks' working directory.")
@click.option("--output-dir", type=_DIR, default=None, help="Where run directories go.")
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
@_node_options
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

    spec = _load(*_one_row([*files, *file_opts], sets, artifacts, missable_tasks, bulk_input, row))
    add_extra_args(spec, extra_args, salloc_args, docker_args)
    set_wait_for_gpus(spec, wait_for_gpus)
    _add_node_filters(spec, include_nodes, exclude_nodes)
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
        _said_all()
    plan_text = dry_run_plan(spec, settings, run_plan)  # renders every task once: a mistake shows now
    if dry_run:
        click.echo(plan_text)
        _said_all()
    progress = "none" if quiet else ("live" if tui else "plain" if tui is False else "auto")
    code = run_workflow(
        spec, settings, progress, run_plan, max_concurrent=max_concurrent, with_report=with_report
    )
    sys.exit(code)


@main.command()
@_files_options
@_override_options
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

    all_files = _all_files(files, file_opts)
    spec = _load(all_files, sets, artifacts, missable_tasks)
    workspace = Path.cwd()
    run_plan = plan_run(spec, workspace / "sflow_output", fingerprints=False)
    describe_plan(spec, workspace, workspace / "sflow_output", run_plan)
    count = len(run_plan.plan.instances)
    click.echo(f"{', '.join(all_files)}: ok (workflow '{spec.workflow.name}', {count} task(s))")
    _said_all()


@main.command()
@_files_options
@_override_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "png", "svg", "pdf"]),
    default="mermaid",
    show_default=True,
    help="Text (mermaid, dot) or an image drawn by Graphviz's `dot` (png, svg, pdf).",
)
@click.option(
    "-o",
    "--output",
    type=_FILE,
    default=None,
    help="Write here (an image's default: <workflow>.<format> in the current folder).",
)
def visualize(
    files: tuple[str, ...],
    file_opts: tuple[str, ...],
    sets: tuple[str, ...],
    artifacts: tuple[str, ...],
    missable_tasks: tuple[str, ...],
    fmt: str,
    output: str | None,
) -> None:
    """Print the task graph as Mermaid or Graphviz dot, or draw it as an image."""
    from sflow.cli.output_file import ready_for, write_output
    from sflow.errors import SflowError, UserError
    from sflow.record.run_dir import safe_name
    from sflow.workflow.plan import expand
    from sflow.workflow.visualize import IMAGE_FORMATS, draw, render_graph

    spec = _load(_all_files(files, file_opts), sets, artifacts, missable_tasks)
    instances = expand(spec).instances
    if fmt not in IMAGE_FORMATS:
        text = render_graph(instances, fmt, title=spec.workflow.name)
        if output:
            write_output(Path(output), text + "\n")
        else:
            click.echo(text)
        return
    path = ready_for(Path(output or f"{safe_name(spec.workflow.name)}.{fmt}"))
    try:
        draw(render_graph(instances, "dot", title=spec.workflow.name), fmt, path)
    except UserError:
        raise
    except SflowError as exc:  # dot itself failed: not a mistake in the input
        click.echo(f"sflow: error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"wrote {path}")


@main.command()
@_files_options
@_override_options
@_bulk_options
@_rows_option
@click.option(
    "-o",
    "--output",
    type=_PATH,
    default=None,
    help="Write here instead of stdout (with --bulk-input: the folder, default sflow_output).",
)
def compose(
    files: tuple[str, ...],
    file_opts: tuple[str, ...],
    sets: tuple[str, ...],
    artifacts: tuple[str, ...],
    missable_tasks: tuple[str, ...],
    bulk_input: str | None,
    rows: tuple[str, ...],
    output: str | None,
) -> None:
    """Merge several workflow files into one (later files override by name); with --bulk-input,
    one merged file per row of the CSV."""
    from sflow.cli.output_file import write_output
    from sflow.schema.compose import ComposeWarning, compose_documents

    if bulk_input is not None:
        from sflow.cli.bulk import bulk_rows, compose_rows

        chosen = bulk_rows(bulk_input, rows, [*files, *file_opts], sets, artifacts)
        out = Path(output or "sflow_output")
        for path in compose_rows(chosen, missable_tasks, out, _dump_yaml):
            click.echo(f"wrote {path}", err=True)
        return
    if rows:
        raise click.UsageError("--row goes with --bulk-input CSV")
    all_files = _all_files(files, file_opts)
    _load(all_files, sets, artifacts, missable_tasks)  # the merged result must be valid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComposeWarning)  # already shown while loading
        merged = compose_documents(all_files, sets, artifacts, missable_tasks)
    text = _dump_yaml(merged)
    if output:
        write_output(Path(output), text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return str(
        yaml.dump(data, Dumper=_block_dumper(), sort_keys=False, default_flow_style=False, allow_unicode=True)
    )


def _block_dumper() -> Any:
    """A YAML dumper that writes multi-line strings (scripts) as `|` blocks, as people write them."""
    import yaml

    class BlockDumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    BlockDumper.add_representer(str, text)
    return BlockDumper


@main.command()
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=_PATH,
    default=None,
    help="Where to write it: a file, or a folder (one that exists, or ending in /).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing file.")
@click.option("-l", "--list", "list_only", is_flag=True, help="List the samples (also without NAME).")
def sample(name: str | None, output: str | None, force: bool, list_only: bool) -> None:
    """List the workflows that ship with sflow, or copy one (NAME) to start from."""
    from sflow.cli.sample import all_samples, copy_sample, find, listing

    samples = all_samples()
    if list_only or name is None:
        click.echo(listing(samples))
        return
    path = copy_sample(find(name, samples), output, force)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.argument("task", required=False)
@click.option("--output-dir", type=_DIR, default="sflow_output", show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows, until the run ends.")
def logs(run_ref: str, task: str | None, output_dir: str, follow: bool) -> None:
    """Print a task's log (or the run's sflow.log) of RUN (a run id, a run directory, or 'latest').

    RUN is 'latest' when left out."""
    from sflow.cli.logs import log_run, print_log

    print_log(log_run(Path(output_dir), run_ref, task), task, follow=follow)


_OUTPUT_DIR = click.option("--output-dir", type=_DIR, default="sflow_output", show_default=True)


def _duration(text: str | None, flag: str) -> float | None:
    from sflow.schema import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


@main.command()
@_OUTPUT_DIR
@click.option("-w", "--workflow", default=None, help="Only runs of this workflow.")
@click.option(
    "--state",
    type=click.Choice(["running", "succeeded", "failed", "interrupted", "killed", "cancelled"]),
    default=None,
    help="Only runs in this state.",
)
@click.option("--since", default=None, metavar="DURATION", help="Only runs started within, e.g. 2h or 7d.")
@click.option("-n", "--last", type=int, default=20, show_default=True, help="Show the newest N (0: all).")
def runs(output_dir: str, workflow: str | None, state: str | None, since: str | None, last: int) -> None:
    """List past and running runs: id, workflow, state, start, duration, task counts."""
    from sflow.cli.runs import show_runs

    click.echo(show_runs(Path(output_dir), workflow, state, _duration(since, "--since"), last))


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@_OUTPUT_DIR
def status(run_ref: str, output_dir: str) -> None:
    """Each task of RUN (a run id, a run directory or 'latest'), while it runs or after it ended.

    RUN is 'latest' when left out."""
    from sflow.cli.runs import show_status
    from sflow.record.runs import find_run

    click.echo(show_status(find_run(Path(output_dir), run_ref)))


@main.command()
@_OUTPUT_DIR
@click.option("--older-than", default=None, metavar="DURATION", help="Runs started longer ago, e.g. 7d.")
@click.option("--keep", type=int, default=None, metavar="N", help="Keep the newest N runs of each workflow.")
@click.option("-w", "--workflow", default=None, help="Only runs of this workflow.")
@click.option("--yes", is_flag=True, help="Remove them (without it, only show what would go).")
def clean(output_dir: str, older_than: str | None, keep: int | None, workflow: str | None, yes: bool) -> None:
    """Remove old run directories; shows what would go unless --yes is given. Running runs stay."""
    from sflow.cli.runs import clean as remove
    from sflow.cli.runs import plan_clean

    if older_than is None and keep is None:
        raise click.UsageError("say which runs to remove: --older-than DURATION and/or --keep N")
    if keep is not None and keep < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--keep")
    out = Path(output_dir)
    going, spared = plan_clean(out, _duration(older_than, "--older-than"), keep, workflow)
    click.echo(remove(out, going, spared, really=yes))


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@_OUTPUT_DIR
@click.option("-o", "--output", type=_FILE, default=None, help="Where (default: RUN/report.html).")
def report(run_ref: str, output_dir: str, output: str | None) -> None:
    """Write RUN's report: one HTML file (graph, timeline, tasks, logs, sweeps) that opens offline.

    RUN is a run id, a run directory or 'latest' (when left out)."""
    from sflow.cli.output_file import write_output
    from sflow.record.report import render_report
    from sflow.record.runs import find_run

    run_dir = find_run(Path(output_dir), run_ref)
    path = write_output(Path(output) if output else run_dir / "report.html", render_report(run_dir))
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.option("--output-dir", type=_DIR, default="sflow_output", show_default=True)
def cancel(run_ref: str, output_dir: str) -> None:
    """Stop RUN, its tasks' processes and what it holds in Slurm (also after sflow died).

    RUN is a run id, a run directory or 'latest' (when left out)."""
    from sflow.cli.cancel import cancel_run
    from sflow.record.runs import find_run

    for line in cancel_run(find_run(Path(output_dir), run_ref)):
        click.echo(line)


@main.command()
@_files_options
@_override_options
@click.option("-e", "--sbatch-extra-args", "extras", multiple=True, help="Extra sbatch flag (repeatable).")
@click.option("-p", "--partition", default=None)
@click.option("-A", "--account", default=None)
@click.option("--time", default=None, help="Time limit, e.g. 01:00:00.")
@click.option("-N", "--nodes", default=None)
@click.option("-J", "--job-name", default=None)
@click.option("-o", "--sbatch-path", type=_FILE, default=None, help="Where to write the script.")
@click.option("--submit", is_flag=True, help="Submit the script and print the job id.")
@_bulk_options
@_rows_option
@click.option(
    "-B",
    "--bulk-submit",
    multiple=True,
    metavar="PATH",
    help="Workflow files, folders of them or globs: one job each, as it is (repeatable).",
)
@click.option("--output-dir", type=_DIR, default=None, help="Where run directories go.")
@_node_options
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
            files=_all_files(files, file_opts),
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
