"""A large generated workflow loads through the fast reader, with correct origins."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_load import generate

from sflow.schema import load_workflow, yaml_source


def test_large_workflow_uses_the_fast_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    generate(path, 5000)

    def no_libyaml(*args: object, **kwargs: object) -> None:
        raise AssertionError("libyaml fallback used for a plain workflow")

    monkeypatch.setattr(yaml_source.yaml, "compose", no_libyaml)
    spec = load_workflow([path])
    tasks = spec.workflow.tasks
    assert len(tasks) == 5000
    last = tasks[-1]
    assert (last.name, last.depends_on, last.timeout, last.script) == (
        "t4999",
        ["t4998"],
        300.0,
        ["echo 4999"],
    )
    assert last.loc() == f"{path}:{5 + 5 * 4999 - 1}"
    assert last.loc("depends_on") == f"{path}:{5 + 5 * 4999 + 2}"
    assert last.path("depends_on") == "workflow.tasks[4999].depends_on"
    assert spec.task_by_name("t2500").depends_on == ["t2499"]
