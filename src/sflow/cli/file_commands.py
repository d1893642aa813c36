"""`sflow compose`, `sflow visualize` and `sflow sample`: workflow files in, a file or graph out."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import click

from sflow.cli.exit_codes import EXIT_FAILED
from sflow.cli.loading import load, workflow_files
from sflow.cli.options import FILE, PATH, bulk_options, files_options, override_options, rows_option


@click.command()
@files_options
@override_options
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
    type=FILE,
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

    spec = load(workflow_files(files, file_opts), sets, artifacts, missable_tasks)
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


@click.command()
@files_options
@override_options
@bulk_options
@rows_option
@click.option(
    "-o",
    "--output",
    type=PATH,
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
    all_files = workflow_files(files, file_opts)
    load(all_files, sets, artifacts, missable_tasks)  # the merged result must be valid
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


@click.command()
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=PATH,
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
