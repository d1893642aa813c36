"""`sflow visualize --format png|svg|pdf`: the graph drawn by Graphviz's `dot`, and a clear word
when `dot` is missing or fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

WORKFLOW = """
version: "0.1"
workflow:
  name: my graph
  tasks:
    - {name: prepare, script: [echo]}
    - {name: train, depends_on: [prepare], script: [echo], replicas: {count: 2}}
    - {name: report, depends_on: [train], script: [echo]}
"""


@pytest.fixture
def dot() -> str:
    found = shutil.which("dot")
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Graphviz's dot is missing: scripts/test installs it (apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")
    return found


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG\r\n"), ("pdf", b"%PDF-")])
def test_an_image_is_drawn_next_to_the_workflow_name(sflow: Any, dot: str, fmt: str, magic: bytes) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    done = sflow("visualize", str(path), "--format", fmt)
    assert done.code == 0, done.err
    image = sflow.tmp / f"my_graph.{fmt}"
    assert done.out.strip() == f"wrote {image.name}"
    assert image.read_bytes().startswith(magic) and image.stat().st_size > 1000


def test_an_svg_names_every_task_and_edge(sflow: Any, dot: str) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    done = sflow("visualize", str(path), "--format", "svg", "-o", "graph.svg")
    assert done.code == 0, done.err
    svg = (sflow.tmp / "graph.svg").read_text()
    for name in ("prepare", "train_0", "train_1", "report"):
        assert f">{name}</text>" in svg
    assert svg.count('class="edge"') == 4


def test_without_dot_the_message_says_what_to_install(sflow: Any, tmp_path: Path) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    sflow.env = lambda: {**os.environ, "PATH": str(empty)}
    done = sflow("visualize", str(path), "--format", "png")
    assert done.code == 2
    assert "Graphviz's `dot`, which is not installed (Debian/Ubuntu: apt-get install graphviz)" in done.err
    assert "Traceback" not in done.err and not (sflow.tmp / "my_graph.png").exists()
    assert sflow("visualize", str(path), "--format", "dot").code == 0  # text needs no Graphviz


def test_a_failing_dot_is_reported(sflow: Any, tmp_path: Path) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\necho 'Format: \"png\" not recognized' >&2\nexit 1\n")
    (bin_dir / "dot").chmod(0o755)
    sflow.env = lambda: {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = sflow("visualize", str(path), "--format", "png")
    assert done.code == 1
    assert 'dot could not draw my_graph.png: Format: "png" not recognized' in done.err


def test_text_formats_may_go_to_a_file(sflow: Any) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    assert sflow("visualize", str(path), "-o", "g.mmd").code == 0
    assert (sflow.tmp / "g.mmd").read_text().startswith("flowchart TD")
