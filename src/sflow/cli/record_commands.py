"""The commands about runs, past or running: `runs`, `status`, `logs`, `cancel`, `clean`, `report`."""

from __future__ import annotations

from pathlib import Path

import click

from sflow.cli.options import FILE, output_dir_option


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.argument("task", required=False)
@output_dir_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows, until the run ends.")
def logs(run_ref: str, task: str | None, output_dir: str, follow: bool) -> None:
    """Print a task's log (or the run's sflow.log) of RUN (a run id, a run directory, or 'latest').

    RUN is 'latest' when left out."""
    from sflow.cli.logs import log_run, print_log

    print_log(log_run(Path(output_dir), run_ref, task), task, follow=follow)


def _duration(text: str | None, flag: str) -> float | None:
    from sflow.schema import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


@click.command()
@output_dir_option
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


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@output_dir_option
def status(run_ref: str, output_dir: str) -> None:
    """Each task of RUN (a run id, a run directory or 'latest'), while it runs or after it ended.

    RUN is 'latest' when left out."""
    from sflow.cli.runs import show_status
    from sflow.record.runs import find_run

    click.echo(show_status(find_run(Path(output_dir), run_ref)))


@click.command()
@output_dir_option
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


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@output_dir_option
@click.option("-o", "--output", type=FILE, default=None, help="Where (default: RUN/report.html).")
def report(run_ref: str, output_dir: str, output: str | None) -> None:
    """Write RUN's report: one HTML file (graph, timeline, tasks, logs, sweeps) that opens offline.

    RUN is a run id, a run directory or 'latest' (when left out)."""
    from sflow.cli.output_file import write_output
    from sflow.record.report import render_report
    from sflow.record.runs import find_run

    run_dir = find_run(Path(output_dir), run_ref)
    path = write_output(Path(output) if output else run_dir / "report.html", render_report(run_dir))
    click.echo(f"wrote {path}")


@click.command()
@click.argument("run_ref", metavar="[RUN]", default="latest")
@output_dir_option
def cancel(run_ref: str, output_dir: str) -> None:
    """Stop RUN, its tasks' processes and what it holds in Slurm (also after sflow died).

    RUN is a run id, a run directory or 'latest' (when left out)."""
    from sflow.cli.cancel import cancel_run
    from sflow.record.runs import find_run

    for line in cancel_run(find_run(Path(output_dir), run_ref)):
        click.echo(line)
