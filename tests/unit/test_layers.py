"""The package layout holds: each folder imports only the folders below it, and nothing imports in a circle.

The contracts live in pyproject.toml (`[tool.importlinter]`); this runs them, so a change that
breaks the layering fails the tests, with import-linter's report of the offending imports.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    proc = subprocess.run(
        [lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def folder_imports() -> dict[str, set[str]]:
    """Each folder of `sflow` (and the loose modules at its top) -> the folders it imports."""
    import grimp

    graph = grimp.build_graph("sflow")

    def folder(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "sflow"

    edges: dict[str, set[str]] = {folder(m): set() for m in graph.modules}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if folder(imported) != folder(module):
                edges[folder(module)].add(folder(imported))
    return edges


def test_the_import_table_in_the_architecture_doc_is_the_code_s() -> None:
    """docs/architecture.md shows which folder imports which; it must say what the code does."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("<!-- import table -->")[1].strip().split("\n\n")[0]
    documented = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip(" `") for c in line.strip("|").split("|")]
        documented[cells[0]] = {c.strip(" `") for c in cells[1].split(",")} - {"-", ""}
    assert documented == folder_imports()
