"""Options that take a path share one click.Path of each kind: making one searches the locale
directories for its name, and `sflow` builds every command's options when it starts."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from sflow.cli.main import main


def test_every_path_option_of_a_kind_shares_one_type() -> None:
    kinds: dict[tuple[bool, bool], set[int]] = {}
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if isinstance(param.type, click.Path):
                kinds.setdefault((param.type.file_okay, param.type.dir_okay), set()).add(id(param.type))
    assert len(kinds) == 3 and all(len(types) == 1 for types in kinds.values())


def test_a_shared_type_still_names_its_kind_in_a_mistake(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["run", "-f", str(tmp_path)], prog_name="sflow")
    assert done.exit_code == 2
    assert f"File '{tmp_path}' is a directory" in done.output
