"""Fixtures of the dispatch unit tests.

Worker subprocesses unpickle the test callables by reference (module `dispatch_helpers`),
as they would a user's installed code, so this directory is put on their PYTHONPATH.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _workers_import_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), path) if p))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "shared"
    path.mkdir()
    yield str(path)
