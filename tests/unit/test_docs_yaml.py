"""Every YAML block in the README and docs/ is a workflow that `sflow validate` accepts.

A block that shows only part of a workflow says so on the line before its fence with
`<!-- fragment -->`; it must still be valid YAML.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sflow.schema import load_workflow
from sflow.workflow.dry_run import describe_plan

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FRAGMENT = "<!-- fragment -->"
_OPEN = re.compile(r"^( *)```ya?ml\s*$")


@dataclass(frozen=True)
class Block:
    where: str  # `README.md:29`, the line of the opening fence
    text: str
    fragment: bool


def yaml_blocks(path: Path, root: Path = REPO) -> list[Block]:
    """The ```yaml blocks of a Markdown file, dedented (a block may sit inside a list item)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        start, indent = index, len(opening.group(1))
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        where = f"{path.relative_to(root).as_posix()}:{start + 1}"
        blocks.append(Block(where, textwrap.dedent("\n".join(body)) + "\n", before == FRAGMENT))
        index += 1
    return blocks


BLOCKS = [block for path in DOCS for block in yaml_blocks(path)]


def test_the_readme_tour_is_among_the_blocks() -> None:
    assert any(b.where.startswith("README.md:") and "workflow:" in b.text and not b.fragment for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_a_documented_workflow_validates(block: Block, tmp_path: Path) -> None:
    if block.fragment:
        yaml.safe_load(block.text)  # a part of a workflow, but still YAML
        return
    path = tmp_path / "block.yaml"
    path.write_text(block.text, encoding="utf-8")
    spec = load_workflow([path])
    describe_plan(spec, tmp_path, tmp_path / "out")  # placement and every expression, as `sflow validate`


def test_the_extractor_reads_indented_blocks_and_fragment_marks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "- an item:\n\n  ```yaml\n  a: 1\n  ```\n\n<!-- fragment -->\n```yml\nb: [2]\n```\n", encoding="utf-8"
    )
    assert yaml_blocks(doc, root=tmp_path) == [
        Block("doc.md:3", "a: 1\n", False),
        Block("doc.md:8", "b: [2]\n", True),
    ]
