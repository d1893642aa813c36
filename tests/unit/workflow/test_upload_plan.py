"""Keys, globs and outcomes of uploads, with a recording stand-in for the S3 client."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sflow.schema.models import StorageTarget, UploadAll
from sflow.workflow.uploads import PlannedUpload, remote_key, run_uploads, upload_run_folder

TARGET = StorageTarget(name="res", type="s3", bucket="b", prefix="runs/1/")


class Recorder:
    def __init__(self, fail: str | None = None) -> None:
        self.sent: dict[str, bytes] = {}
        self.fail = fail

    def __call__(self, target: StorageTarget, file: Path, key: str) -> None:
        if self.fail:
            raise RuntimeError(self.fail)
        self.sent[key] = file.read_bytes()


@pytest.mark.parametrize(
    ("prefix", "to", "replica", "key"),
    [
        ("runs/1/", None, None, "runs/1/results.csv"),
        ("runs/1/", "main/results.csv", None, "runs/1/main/results.csv"),
        ("runs/1/", "main/", None, "runs/1/main/results.csv"),
        ("runs/1", "main/r.csv", None, "runs/1/main/r.csv"),  # a prefix without '/' is a folder
        ("", "/main/r.csv", None, "main/r.csv"),
        ("p/", "main/results.csv", "bench_0", "p/main/results_bench_0.csv"),
        ("p/", None, "bench_1", "p/results_bench_1.csv"),
    ],
)
def test_remote_key(prefix: str, to: str | None, replica: str | None, key: str) -> None:
    assert remote_key(prefix, to, Path("/x/results.csv"), replica) == key


def test_a_glob_sends_each_file_under_its_own_name(tmp_path: Path) -> None:
    for name in ("a.json", "b.json", "c.txt"):
        (tmp_path / name).write_text(name)
    put = Recorder()
    planned = [PlannedUpload("t", "res", str(tmp_path / "*.json"), None, "warn", None)]
    results = run_uploads(planned, {"res": TARGET}, put)
    assert put.sent == {"runs/1/a.json": b"a.json", "runs/1/b.json": b"b.json"}
    assert [(r.ok, r.destination) for r in results] == [
        (True, "s3://b/runs/1/a.json"),
        (True, "s3://b/runs/1/b.json"),
    ]


def test_a_pattern_that_matches_nothing_is_a_failed_upload(tmp_path: Path) -> None:
    planned = [PlannedUpload("t", "res", str(tmp_path / "*.csv"), None, "fail", None)]
    (result,) = run_uploads(planned, {"res": TARGET}, Recorder())
    assert not result.ok and result.error == "no file matches" and result.on_error == "fail"


def test_a_failed_put_names_file_destination_and_error(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("x")
    planned = [PlannedUpload("t", "res", str(tmp_path / "r.csv"), "main/r.csv", "warn", None)]
    (result,) = run_uploads(planned, {"res": TARGET}, Recorder(fail="NoSuchBucket"))
    assert not result.ok
    assert result.line() == (
        f"task 't': upload of {tmp_path / 'r.csv'} to s3://b/runs/1/main/r.csv failed: NoSuchBucket"
    )


def test_upload_all_zips_the_run_folder_by_relative_paths(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "task").mkdir(parents=True)
    (run_dir / "sflow.log").write_text("log")
    (run_dir / "task" / "out.csv").write_text("1,2")
    put = Recorder()
    result = upload_run_folder(run_dir, "RID", UploadAll(target="res"), None, {"res": TARGET}, put)
    assert result.ok and result.destination == "s3://b/runs/1/RID.zip"
    archive = tmp_path / "got.zip"
    archive.write_bytes(put.sent["runs/1/RID.zip"])
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["sflow.log", "task/out.csv"]
        assert zf.read("task/out.csv") == b"1,2"


PLANNED = """
version: "0.1"
variables: {B: {value: bkt}}
storage:
  store: {type: s3, bucket: "${{ variables.B }}", prefix: p/}
workflow:
  name: wf
  upload_all: {target: store}
  tasks:
    - name: t
      replicas: {count: 2}
      script: [echo]
      uploads:
        - {target: store, from: "${{ task.output_dir }}/r.csv", to: "out/r.csv", on_error: fail}
        - {target: store, from: "*.json", to: "${{ task.name }}/"}
"""


def test_a_dry_run_lists_every_planned_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sflow.schema import load_workflow
    from sflow.workflow.dry_run import describe_plan, plan_data

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "wf.yaml"
    path.write_text(PLANNED)
    spec = load_workflow([path], sets=["B=other"])
    out = tmp_path / "out"
    text = describe_plan(spec, tmp_path, out)
    run = out / "<run-id>"
    assert f"upload_all: {run} zipped -> s3://other/p/<run-id>.zip (on_error: warn)" in text
    assert "uploads: no S3 credentials found" in text
    assert f"upload: {run}/t_1/r.csv -> s3://other/p/out/r_t_1.csv (on_error: fail)" in text
    assert f"upload: {run}/t_0/*.json -> s3://other/p/t_0/ (on_error: warn)" in text
    data = plan_data(spec, tmp_path, out)
    assert data["tasks"][0]["uploads"][0] == {
        "target": "store",
        "from": f"{run}/t_0/r.csv",
        "to": "s3://other/p/out/r_t_0.csv",
        "on_error": "fail",
    }
