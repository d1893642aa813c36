"""Fixtures of the flow unit tests.

Each test runs in its own working directory (a flow records to ./sflow_output by default)
with a fresh `sflow.dispatch` configuration. Worker subprocesses import the helpers of
this directory by name, as they would a user's installed code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sflow.dispatch import reset_config

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), path) if p))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    reset_config()
    yield
    reset_config()
