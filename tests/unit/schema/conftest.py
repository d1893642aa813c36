"""Fixtures for the spec tests: write YAML text to a temporary file and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.schema import WorkflowSpec, load_workflow

DATA = Path(__file__).parent / "data"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(text, name="wf.yaml") -> path of a file holding the dedented text."""

    def _write(text: str, name: str = "wf.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load(write: Callable[..., Path]) -> Callable[..., WorkflowSpec]:
    """load(text, **load_workflow kwargs) -> the WorkflowSpec of that YAML text."""

    def _load(text: str, **kwargs: object) -> WorkflowSpec:
        return load_workflow([write(text)], **kwargs)  # type: ignore[arg-type]

    return _load
