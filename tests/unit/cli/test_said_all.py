"""A dry run and `validate` end the `sflow` program with what they built still in memory: the
process ends without freeing it object by object, and its output is all written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """\
version: "0.1"
workflow:
  name: wf
  tasks:
    - {name: a, script: [echo a]}
    - {name: b, script: [echo b], depends_on: [a]}
"""

WATCH = """
import atexit, sys, weakref
import sflow.workflow.dry_run as dry_run
from sflow.console import run

kept = []
real = dry_run.describe_plan

def describe_plan(spec, workspace, output_dir, run_plan):
    kept.append(weakref.ref(run_plan))
    return real(spec, workspace, output_dir, run_plan)

dry_run.describe_plan = describe_plan
atexit.register(lambda: print("plan kept" if kept and kept[0]() is not None else "plan freed", file=sys.stderr))
sys.argv = ["sflow", *sys.argv[1:]]
run()
"""


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["validate"]])
def test_the_program_ends_holding_the_plan(tmp_path: Path, command: list[str]) -> None:
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(WORKFLOW)
    done = subprocess.run(
        [sys.executable, "-c", WATCH, *command, "-f", str(workflow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "plan kept\n"
    assert "2. b" in done.stdout or "ok (workflow 'wf', 2 task(s))" in done.stdout
