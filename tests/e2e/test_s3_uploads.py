"""Uploads end to end, against a real S3-compatible server (moto's server mode) on this machine.

The server is a separate process on a free port; sflow finds it through `AWS_ENDPOINT_URL` (or a
target's `endpoint_url`) and takes its credentials from the environment, as it would for S3. The
tests read back what arrived with their own client.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, stopped after the test."""
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # ends if the server exits before it listens
            if "Running on http://" in line:
                yield line.split("Running on ", 1)[1].split()[0].rstrip("/")
                break
        else:
            pytest.fail(f"moto server exited with {proc.wait()} before listening")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """A client of the server, with its bucket; sflow's environment points at the same server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", region_name=REGION, endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="results")
    return client


def keys(client: object, bucket: str = "results") -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listing.get("Contents", []))


def body(client: object, key: str, bucket: str = "results") -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined, no-any-return]


UPLOADS = """
version: "0.1"
variables:
  RUN: {value: r1}
  BUCKET: {value: results}
storage:
  - name: store
    type: s3
    bucket: ${{ variables.BUCKET }}
    prefix: "runs/${{ variables.RUN }}/"
workflow:
  name: up
  tasks:
    - name: produce
      script:
        - echo "metric,value" > "$SFLOW_TASK_OUTPUT_DIR/results.csv"
        - echo '{"a":1}' > "$SFLOW_TASK_OUTPUT_DIR/a.json"
        - echo '{"b":2}' > "$SFLOW_TASK_OUTPUT_DIR/b.json"
      uploads:
        - {target: store, from: "${{ task.output_dir }}/results.csv", to: main/results.csv, on_error: ON_ERROR}
        - {target: store, from: "*.json", to: json/}
    - name: sweep
      replicas: {count: 2}
      script:
        - echo "replica $SFLOW_REPLICA_INDEX" > "$SFLOW_TASK_OUTPUT_DIR/score.txt"
      uploads:
        - {target: store, from: score.txt}
    - name: after
      depends_on: [produce]
      script: [echo after]
"""


def test_a_run_uploads_its_files_and_the_server_has_them(sflow: Any, s3: object) -> None:
    done = sflow("run", str(sflow.write("up.yaml", UPLOADS.replace("ON_ERROR", "fail"))), "--no-tui")
    assert done.code == 0, done.err
    assert keys(s3) == [
        "runs/r1/json/a.json",
        "runs/r1/json/b.json",
        "runs/r1/main/results.csv",
        "runs/r1/score_sweep_0.txt",  # replicas do not overwrite each other
        "runs/r1/score_sweep_1.txt",
    ]
    assert body(s3, "runs/r1/main/results.csv") == b"metric,value\n"
    assert body(s3, "runs/r1/json/b.json") == b'{"b":2}\n'
    assert body(s3, "runs/r1/score_sweep_1.txt") == b"replica 1\n"
    summary = done.summary()
    assert all(u["ok"] for u in summary["uploads"]) and len(summary["uploads"]) == 5
    log = (done.run_dir() / "sflow.log").read_text()
    assert "task 'produce': uploaded" in log and "s3://results/runs/r1/main/results.csv" in log


def test_a_failed_upload_with_on_error_fail_fails_the_task(sflow: Any, s3: object) -> None:
    path = sflow.write("up.yaml", UPLOADS.replace("ON_ERROR", "fail"))
    done = sflow("run", str(path), "--no-tui", "-s", "BUCKET=missing-bucket")
    assert done.code == 1
    assert "s3://missing-bucket/runs/r1/main/results.csv failed" in done.err
    assert "NoSuchBucket" in done.err
    assert "Traceback" not in done.err
    summary = done.summary()
    produce = summary["tasks"]["produce"]
    assert produce["state"] == "failed" and produce["attempts"] == 1
    assert produce["reason"].startswith("upload failed: s3://missing-bucket/runs/r1/main/results.csv")
    assert summary["tasks"]["after"]["state"] != "succeeded"  # its dependency did not complete
    assert not summary["ok"]
    assert not any(u["ok"] for u in summary["uploads"])


def test_a_failed_upload_with_on_error_warn_is_reported_and_the_task_completes(
    sflow: Any, s3: object
) -> None:
    path = sflow.write(
        "up.yaml", UPLOADS.replace("ON_ERROR", "warn").replace("to: json/}", "to: json/, on_error: warn}")
    )
    done = sflow("run", str(path), "--no-tui", "-s", "BUCKET=missing-bucket", "-t", "produce")
    assert done.code == 0, done.err
    assert done.err.count("NoSuchBucket") == 3 and "(on_error: warn)" in done.err
    summary = done.summary()
    assert summary["tasks"]["produce"]["state"] == "succeeded"
    assert [u["ok"] for u in summary["uploads"]] == [False, False, False]
    assert keys(s3) == []


UPLOAD_ALL = """
version: "0.1"
storage:
  store: {type: s3, bucket: results, prefix: archive, endpoint_url: ENDPOINT}
workflow:
  name: whole
  upload_all: {target: store, to: "${{ workflow.run_id }}/run.zip", on_error: fail}
  tasks:
    - name: one
      script: ['echo "one done" > "$SFLOW_TASK_OUTPUT_DIR/report.txt"']
"""


def test_upload_all_sends_the_run_folder_as_one_zip(
    sflow: Any, s3: object, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the target's own endpoint_url is used
    done = sflow("run", str(sflow.write("all.yaml", UPLOAD_ALL.replace("ENDPOINT", s3_endpoint))), "--no-tui")
    assert done.code == 0, done.err
    run_id = done.run_dir().name
    assert keys(s3) == [f"archive/{run_id}/run.zip"]
    with zipfile.ZipFile(io.BytesIO(body(s3, f"archive/{run_id}/run.zip"))) as zf:
        names = zf.namelist()
        assert "one/report.txt" in names and "sflow.log" in names
        assert zf.read("one/report.txt") == b"one done\n"


def test_upload_all_that_fails_fails_the_run(sflow: Any, s3: object, s3_endpoint: str) -> None:
    text = UPLOAD_ALL.replace("ENDPOINT", s3_endpoint).replace("bucket: results", "bucket: nowhere")
    done = sflow("run", str(sflow.write("all.yaml", text)), "--no-tui")
    assert done.code == 1
    assert "upload_all: upload of" in done.err and "s3://nowhere/archive/" in done.err
    summary = done.summary()
    assert summary["tasks"]["one"]["state"] == "succeeded"
    assert not summary["ok"] and summary["stop_reason"].startswith("upload_all failed: s3://nowhere/")


def test_without_boto3_a_workflow_that_uploads_stops_before_any_task(
    sflow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "no-boto3" / "boto3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('boto3 is not installed here')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    done = sflow("run", str(sflow.write("up.yaml", UPLOADS.replace("ON_ERROR", "fail"))), "--no-tui")
    assert done.code == 2
    assert "uploads need boto3: pip install 'sflow[s3]'" in done.err
    assert "Traceback" not in done.err
    assert not (done.run_dir() / "produce" / "results.csv").exists()
