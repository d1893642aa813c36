"""The usage lines say which arguments may be left out."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sflow.cli.main import main


@pytest.mark.parametrize("command", ["logs", "status", "report", "cancel"])
def test_run_may_be_left_out_and_its_default_is_named(command: str) -> None:
    done = CliRunner().invoke(main, [command, "--help"], prog_name="sflow")
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"Usage: sflow {command} [OPTIONS] [RUN]")
    assert "'latest' when left out" in done.output or "'latest' (when left out)" in done.output
