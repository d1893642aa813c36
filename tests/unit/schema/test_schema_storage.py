"""`storage` targets, a task's `uploads` and `workflow.upload_all`: their fields and mistakes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec, load_workflow

STORAGE = """
version: "0.1"
storage:
  - name: results
    type: s3
    bucket: my-bucket
    region: us-west-2
    prefix: "runs/${{ variables.RUN }}/"
workflow:
  name: wf
  upload_all: {target: results, to: "archive/${{ workflow.run_id }}.zip", on_error: fail}
  tasks:
    - name: t
      script: [echo]
      uploads:
        - {target: results, from: "${{ task.output_dir }}/results.csv", to: main/results.csv}
        - {target: results, from: "*.json"}
"""


def error(write: Callable[..., Path], text: str) -> SpecError:
    path = write(text)
    with pytest.raises(SpecError) as err:
        load_workflow([path])
    return err.value


def test_storage_targets_uploads_and_upload_all_load(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(STORAGE)
    target = spec.storage["results"]
    assert (target.type, target.bucket, target.region, target.prefix) == (
        "s3",
        "my-bucket",
        "us-west-2",
        "runs/${{ variables.RUN }}/",
    )
    assert target.endpoint_url is None and target.addressing_style is None
    first, second = spec.tasks[0].uploads
    assert (first.target, first.source, first.to, first.on_error) == (
        "results",
        "${{ task.output_dir }}/results.csv",
        "main/results.csv",
        "warn",
    )
    assert (second.source, second.to) == ("*.json", None)
    upload_all = spec.workflow.upload_all
    assert upload_all is not None and (upload_all.target, upload_all.on_error) == ("results", "fail")


def test_storage_may_be_a_mapping_by_name(load: Callable[..., WorkflowSpec]) -> None:
    spec = load(STORAGE.replace("  - name: results\n    type: s3", "  results:\n    type: s3"))
    assert spec.storage["results"].name == "results"


def test_an_upload_to_an_undeclared_target_is_named_at_its_line(write: Callable[..., Path]) -> None:
    err = error(write, STORAGE.replace('{target: results, from: "*.json"}', "{target: result, from: x}"))
    assert err.field == "workflow.tasks[0].uploads[1].target"
    assert err.where.endswith("wf.yaml:16")
    assert "unknown storage target 'result'" in err.message and "'results'" in err.message


def test_upload_all_to_an_undeclared_target(write: Callable[..., Path]) -> None:
    err = error(write, STORAGE.replace("upload_all: {target: results", "upload_all: {target: other"))
    assert err.field == "workflow.upload_all.target"
    assert "unknown storage target 'other'" in err.message


def test_a_glob_upload_needs_a_folder_or_no_key(write: Callable[..., Path]) -> None:
    err = error(write, STORAGE.replace('from: "*.json"}', 'from: "*.json", to: one.json}'))
    assert err.field.startswith("workflow.tasks[0].uploads[1]")
    assert "'to' must end with '/'" in err.message


def test_a_key_may_not_leave_the_prefix(write: Callable[..., Path]) -> None:
    err = error(write, STORAGE.replace("to: main/results.csv", "to: ../other/results.csv"))
    assert "stay under the target's prefix" in err.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    type: s3\n", "    type: gcs\n", "storage.results.type"),
        ("    bucket: my-bucket\n", "", "storage.results.bucket"),
        (
            "    region: us-west-2\n",
            "    region: us-west-2\n    secret_key: x\n",
            "storage.results.secret_key",
        ),
        ("on_error: fail}", "on_error: ignore}", "workflow.upload_all.on_error"),
    ],
)
def test_storage_field_mistakes(write: Callable[..., Path], old: str, new: str, field: str) -> None:
    err = error(write, STORAGE.replace(old, new))
    assert err.field == field
