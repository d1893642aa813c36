"""Several files: later files override by name (with a warning), tasks concatenate, origins survive."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sflow.errors import SpecError
from sflow.schema import ComposeWarning, compose_documents, load_workflow

Write = Callable[..., Path]

BASE = """
version: "0.1"
variables:
  MODEL: {value: llama, description: which model}
  STEPS: 10
backends:
  - name: cluster
    type: slurm
    partition: batch
    default: true
workflow:
  name: base
  timeout: 1h
  variables:
    LR: 0.1
  tasks:
    - name: prepare
      script: [echo prepare]
    - name: train
      script: [echo train]
      depends_on: [prepare]
"""

SITE = """
variables:
  MODEL: mistral
backends:
  cluster:
    type: slurm
    partition: gpu
    account: lab
workflow:
  timeout: 2h
  tasks:
    - name: train
      script: [echo train on site]
      depends_on: [prepare]
    - name: report
      script: [echo report]
      depends_on: [train]
"""


def test_later_file_overrides_by_name_and_warns(write: Write) -> None:
    base, site = write(BASE, "base.yaml"), write(SITE, "site.yaml")
    with pytest.warns(ComposeWarning) as record:
        spec = load_workflow([base, site])
    messages = [str(w.message) for w in record]
    assert f"variables.MODEL from {site}:2 overrides the one from {base}:3" in messages
    assert f"backends.cluster from {site}:4 overrides the one from {base}:6" in messages
    assert f"workflow.timeout from {site}:9 overrides the one from {base}:12" in messages
    assert f"task 'train' from {site}:11 overrides the one from {base}:18" in messages
    assert spec.variables["MODEL"].value == "mistral" and spec.variables["MODEL"].description is None
    assert spec.variables["STEPS"].value == 10
    assert spec.backends["cluster"].partition == "gpu"  # type: ignore[union-attr]
    assert spec.workflow.timeout == 7200.0 and spec.workflow.name == "base"
    assert [t.name for t in spec.workflow.tasks] == ["prepare", "train", "report"]
    assert spec.workflow.tasks[1].script == ["echo train on site"]
    assert spec.sources == (str(base), str(site))


def test_locations_point_at_the_file_that_defined_each_value(write: Write) -> None:
    base, site = write(BASE, "base.yaml"), write(SITE, "site.yaml")
    with pytest.warns(ComposeWarning):
        spec = load_workflow([base, site])
    prepare, train, report = spec.workflow.tasks
    assert prepare.loc() == f"{base}:16"
    assert train.loc("script") == f"{site}:12"
    assert report.loc("depends_on") == f"{site}:16"
    assert spec.variables["STEPS"].loc() == f"{base}:4"
    assert spec.variables["MODEL"].loc() == f"{site}:2"
    assert spec.backends["cluster"].loc("account") == f"{site}:7"
    assert spec.workflow.loc("timeout") == f"{site}:9"
    assert spec.workflow.loc("name") == f"{base}:11"


def test_error_in_an_overriding_entry_names_its_file(write: Write) -> None:
    base = write(BASE, "base.yaml")
    site = write("backends:\n  cluster:\n    type: slurm\n    nodes: many\n", "site.yaml")
    with pytest.warns(ComposeWarning), pytest.raises(SpecError) as err:
        load_workflow([base, site])
    assert (err.value.where, err.value.field) == (f"{site}:4", "backends.cluster.nodes")


def test_same_name_twice_in_one_file_is_still_a_duplicate(write: Write) -> None:
    base = write(BASE, "base.yaml")
    extra = write(
        "workflow:\n  tasks:\n    - name: x\n      script: [a]\n    - name: x\n      script: [b]\n",
        "extra.yaml",
    )
    with pytest.raises(SpecError, match="duplicate task name 'x'"):
        load_workflow([base, extra])


def test_version_conflict(write: Write) -> None:
    base = write(BASE, "base.yaml")
    other = write('version: "0.2"\n', "other.yaml")
    with pytest.raises(SpecError) as err:
        load_workflow([base, other])
    assert err.value.where == f"{other}:1" and "conflicts with version '0.1'" in err.value.message


def test_missable_tasks_drop_dependencies_on_absent_tasks(write: Write) -> None:
    text = 'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      depends_on: [optional_setup, b]\n    - name: b\n      script: [y]\n'
    path = write(text)
    with pytest.raises(SpecError, match="unknown task 'optional_setup'"):
        load_workflow([path])
    with pytest.warns(ComposeWarning, match=r"task 'a' no longer depends on 'optional_setup'"):
        spec = load_workflow([path], missable_tasks=["optional_*"])
    assert spec.workflow.tasks[0].depends_on == ["b"]


def test_missable_tasks_name_the_tasks_that_may_be_absent(write: Write) -> None:
    """An absent task that no name or glob matches is still a mistake, named at its line."""
    text = 'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      depends_on: [prefill_0, decode]\n'
    path = write(text)
    with pytest.raises(SpecError) as err, pytest.warns(ComposeWarning):
        load_workflow([path], missable_tasks=["prefill_*", "other"])
    assert err.value.message == "depends on unknown task 'decode'"
    assert err.value.where == f"{path}:7"
    with pytest.warns(ComposeWarning, match="'prefill_0', 'decode'"):
        spec = load_workflow([path], missable_tasks=["prefill_*", "decode"])
    assert spec.workflow.tasks[0].depends_on == []


def test_compose_drops_only_missable_dependencies(write: Write) -> None:
    text = 'version: "0.1"\nworkflow:\n  name: wf\n  tasks:\n    - name: a\n      script: [x]\n      depends_on: [prefill_0, decode]\n'
    merged = compose_documents([write(text)], missable_tasks=["prefill_*"])
    assert merged["workflow"]["tasks"][0]["depends_on"] == ["decode"]


def test_compose_documents_gives_plain_data_that_loads_again(write: Write, tmp_path: Path) -> None:
    base, site = write(BASE, "base.yaml"), write(SITE, "site.yaml")
    with pytest.warns(ComposeWarning):
        merged = compose_documents([base, site], sets=["STEPS=20"])
    assert merged["variables"] == {
        "MODEL": {"value": "mistral"},
        "STEPS": {"value": 20},
    }
    assert merged["backends"]["cluster"] == {"type": "slurm", "partition": "gpu", "account": "lab"}
    assert [t["name"] for t in merged["workflow"]["tasks"]] == ["prepare", "train", "report"]
    out = tmp_path / "merged.yaml"
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    again = load_workflow([out])
    assert again.variables["STEPS"].value == 20 and again.workflow.timeout == 7200.0


def test_no_files() -> None:
    with pytest.raises(SpecError, match="no workflow file given"):
        load_workflow([])


def test_a_single_path_is_accepted(write: Write) -> None:
    spec = load_workflow(write(BASE))  # type: ignore[arg-type]
    assert spec.workflow.name == "base"
