"""The `sflow` command group: a thin face over the library.

Each command lives in a module of its family, loaded only when that command is called (or when
click lists the commands, for the group's help): `sflow run` does not build every other command's
options. Heavy modules (the workflow models, Jinja, rich, asyncio machinery) are imported inside
the commands. Every user mistake becomes one line on stderr and exit code 2; a failed workflow
exits 1; Ctrl-C exits 130 and SIGTERM 143.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any, TextIO

import click

from sflow.cli.exit_codes import EXIT_USAGE

# Each command's name and the module that defines it (as a function of the same name).
COMMANDS = {
    "run": "sflow.cli.run_commands",
    "validate": "sflow.cli.run_commands",
    "batch": "sflow.cli.batch_commands",
    "compose": "sflow.cli.file_commands",
    "visualize": "sflow.cli.file_commands",
    "sample": "sflow.cli.file_commands",
    "runs": "sflow.cli.record_commands",
    "status": "sflow.cli.record_commands",
    "logs": "sflow.cli.record_commands",
    "cancel": "sflow.cli.record_commands",
    "clean": "sflow.cli.record_commands",
    "report": "sflow.cli.record_commands",
}


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
    """Loads a command's module when the command is called; turns user errors raised anywhere
    below into one line and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = getattr(importlib.import_module(module), cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, with the close names of an unknown command drawn from every command."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as unknown:
            raise click.exceptions.NoSuchCommand(
                unknown.command_name, possibilities=COMMANDS, ctx=ctx
            ) from None

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
