"""Files named with `-o`: written into folders that do not exist yet, and a path that cannot be
written is one line and exit code 2, never a traceback."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

WORKFLOW = """
version: "0.1"
workflow:
  name: out-files
  tasks:
    - name: hello
      script: [echo hello]
"""


def _args(command: str, sflow: Any, target: str) -> list[str]:
    wf = str(sflow.write("wf.yaml", WORKFLOW))
    return {
        "compose": ["compose", "-f", wf, "-o", target],
        "visualize": ["visualize", wf, "-o", target],
        "sample": ["sample", "local/param_sweep", "-o", target],
        "report": ["report", "latest", "--output-dir", str(sflow.output_dir), "-o", target],
    }[command]


COMMANDS = ["compose", "visualize", "sample", "report"]


@pytest.fixture
def with_a_run(sflow: Any) -> Any:
    sflow.write("wf.yaml", WORKFLOW)
    assert sflow("run", "-f", "wf.yaml").code == 0
    return sflow


@pytest.mark.parametrize("command", COMMANDS)
def test_the_folders_of_the_output_are_made(with_a_run: Any, command: str) -> None:
    sflow = with_a_run
    done = sflow(*_args(command, sflow, "new/deeper/out.txt"))
    assert done.code == 0, done.err
    assert (sflow.tmp / "new" / "deeper" / "out.txt").stat().st_size > 0


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_one_line(with_a_run: Any, command: str) -> None:
    sflow = with_a_run
    (sflow.tmp / "plain").write_text("a file, not a folder")
    done = sflow(*_args(command, sflow, "plain/out.txt"))
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    assert done.err.strip() == (
        "sflow: error: cannot write plain/out.txt: a part of the path is a file, not a folder"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_an_image_goes_into_a_new_folder(sflow: Any) -> None:
    done = sflow(*_args("visualize", sflow, "img/graph.svg"), "--format", "svg")
    assert done.code == 0, done.err
    assert "<svg" in (sflow.tmp / "img" / "graph.svg").read_text()


def test_a_sample_into_a_new_folder_named_with_a_slash(sflow: Any) -> None:
    done = sflow("sample", "local/param_sweep", "-o", "mine/")
    assert done.code == 0, done.err
    assert (sflow.tmp / "mine" / "param_sweep.yaml").read_text().startswith("#")
