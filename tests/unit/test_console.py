"""`sflow --help` is answered without click from a copy of its text; the copy must be what click
prints, and a narrower terminal gets click's own wrapping."""

from __future__ import annotations

import os
import subprocess
import sys

from sflow.console import HELP

RUN = (
    "import sys; sys.argv = ['sflow', *sys.argv[1:]]; from sflow.console import run\n"
    "try:\n    run()\nfinally:\n    print(' '.join(sys.modules), file=sys.stderr)"
)


def sflow(*args: str, columns: str = "") -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(done.stderr.split())


def test_the_copy_is_what_click_prints() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    code = "from sflow.cli import main; main(['--help'], prog_name='sflow')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0
    assert done.stdout == HELP, "write it again: python -m sflow.console"


def test_help_loads_no_click() -> None:
    for flag in ("--help", "-h"):
        out, loaded = sflow(flag)
        assert out == HELP
        assert "click" not in loaded


def test_a_narrow_terminal_gets_clicks_own_wrapping() -> None:
    out, loaded = sflow("--help", columns="60")
    assert out != HELP and "Usage: sflow [OPTIONS] COMMAND [ARGS]..." in out
    assert "click" in loaded
    wide, _ = sflow("--help", columns="200")
    assert wide == HELP  # click wraps at 78 from 80 columns on


def test_other_commands_go_to_click() -> None:
    out, loaded = sflow("run", "--help")
    assert "--dry-run" in out and "click" in loaded
