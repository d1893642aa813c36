"""The group loads a command's module only when that command is called."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from sflow.cli.main import COMMANDS, main


def test_every_command_is_found_under_its_name_with_its_help() -> None:
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name and command.help
    assert main.get_command(ctx, "nosuch") is None


def test_a_command_loads_no_other_familys_module() -> None:
    code = (
        "import sys\nfrom sflow.cli.main import main\ntry:\n    main(['validate', '--help'])\n"
        "except SystemExit:\n    pass\nprint(' '.join(sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stderr.split())
    assert "sflow.cli.run_commands" in loaded
    assert not {m for m in COMMANDS.values() if m != "sflow.cli.run_commands"} & loaded


def test_an_unknown_command_suggests_the_close_names() -> None:
    done = CliRunner().invoke(main, ["ru"], prog_name="sflow")
    assert done.exit_code == 2
    assert "No such command 'ru'. (Did you mean one of: 'run', 'runs'?)" in done.output
