"""Every YAML file in examples/ works: local ones run, Slurm ones plan (they run in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]  # not imported from conftest: names clash

EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


def uses_slurm(path) -> bool:
    data = yaml.safe_load(path.read_text())
    backends = data.get("backends") or []
    items = backends.values() if isinstance(backends, dict) else backends
    return any(b.get("type") == "slurm" for b in items)


def test_examples_exist():
    names = {p.relative_to(REPO / "examples").as_posix() for p in EXAMPLES}
    assert {"hello.yaml", "dag.yaml", "seed/minimal.yaml", "seed/local.yaml", "seed/slurm.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(REPO / "examples").as_posix())
def test_example(sflow, path):
    if uses_slurm(path):
        done = sflow("run", "-f", str(path), "--dry-run")
        assert done.code == 0, done.err
        assert "command: srun" in done.out
    else:
        done = sflow("run", "-f", str(path))
        assert done.code == 0, done.err
        assert done.summary()["ok"] is True
