"""`leave` ends only the `sflow` command's own process, and only once all it wrote is out."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from sflow.cli import leave as leave_module
from sflow.cli.leave import leave

LEAVES = """
import atexit, sys
from sflow.cli.leave import leave, own_process
atexit.register(lambda: print("exit functions ran", file=sys.stderr))
own_process()
sys.stdout.write("said" * 100_000)  # more than a pipe's buffer: all of it must be flushed
leave(3)
print("still here")
"""


class Left(Exception):
    pass


def test_a_library_caller_keeps_its_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leave_module, "_owned", False)
    monkeypatch.setattr(leave_module.os, "_exit", _refuse)
    leave(0)  # returns


def test_the_command_does_not_leave_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leave_module, "_owned", True)
    monkeypatch.setattr(leave_module.os, "_exit", _refuse)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        leave(0)  # returns: the thread may still have something to finish
    finally:
        release.set()
        other.join()


def test_the_command_leaves_with_its_code_everything_written() -> None:
    done = subprocess.run([sys.executable, "-c", LEAVES], capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert done.stdout == "said" * 100_000
    assert done.stderr == "exit functions ran\n"


def _refuse(code: int) -> None:
    raise Left(code)
