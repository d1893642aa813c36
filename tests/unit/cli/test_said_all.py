"""A dry run and `validate` end the `sflow` program with what they built still in memory: the
process ends without freeing it object by object, and its output is all written. Nor do they walk
a workflow without mistakes for the file:line of each value, which only a message needs."""

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
import atexit, sys
import sflow.workflow.dry_run as dry_run
from sflow.console import run

class Probe:
    def __del__(self):
        print("plan freed", file=sys.stderr)

real = dry_run.describe_plan_pieces

def describe_plan_pieces(spec, *args):
    spec.__dict__["probe"] = Probe()  # lives as long as the loaded workflow
    return real(spec, *args)

dry_run.describe_plan_pieces = describe_plan_pieces
atexit.register(lambda: print("ending", file=sys.stderr))
sys.argv = ["sflow", *sys.argv[1:]]
run()
"""


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["validate"]])
def test_the_program_ends_holding_the_plan(tmp_path: Path, command: list[str]) -> None:
    done = _sflow_under(WATCH, command, tmp_path)
    assert done.stderr == "ending\n"  # and not "plan freed" first
    assert "2. b" in done.stdout or "ok (workflow 'wf', 2 task(s))" in done.stdout


UNWALKED = """
import sys
import sflow.schema.base as base
from sflow.console import run

def walked(*args):
    print("origins walked", file=sys.stderr)

base.attach_origins = walked
sys.argv = ["sflow", *sys.argv[1:]]
run()
"""


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["validate"]])
def test_a_workflow_without_mistakes_is_not_walked_for_its_origins(
    tmp_path: Path, command: list[str]
) -> None:
    done = _sflow_under(UNWALKED, command, tmp_path)
    assert "origins walked" not in done.stderr


def _sflow_under(wrapper: str, command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`sflow COMMAND -f wf.yaml` (WORKFLOW) started by `wrapper`, which succeeds."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(WORKFLOW)
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command, "-f", str(workflow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done
