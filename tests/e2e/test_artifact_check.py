"""`fs://` artifacts are checked before a run starts; `--skip-artifact-check` makes it a warning."""

from __future__ import annotations

from typing import Any

WORKFLOW = """
version: "0.1"
artifacts:
  MODEL: {uri: "fs://models/llama"}
  DATA: {uri: "fs:///nonexistent/sflow-data"}
  NOTES: {uri: "file://notes.txt", content: "hi"}
  SITE: {uri: "https://example.invalid/x"}
workflow:
  name: art
  tasks:
    - name: t
      script: ['echo "model=$MODEL"']
"""


def test_a_missing_fs_artifact_stops_the_run_before_any_task(sflow: Any) -> None:
    path = sflow.write("wf.yaml", WORKFLOW)
    done = sflow("run", str(path), "--no-tui")
    assert done.code == 2
    errors = [line for line in done.err.splitlines() if "does not exist" in line]
    assert len(errors) == 2  # both, each at its line; file:// and https:// are not checked
    assert (
        f"{path}:3: artifacts.MODEL.uri: artifact 'MODEL': {sflow.tmp}/models/llama does not exist"
        in done.err
    )
    assert (
        f"{path}:4: artifacts.DATA.uri: artifact 'DATA': /nonexistent/sflow-data does not exist" in done.err
    )
    assert "--skip-artifact-check" in done.err
    assert not sflow.output_dir.exists()  # nothing ran


def test_skip_artifact_check_warns_and_runs(sflow: Any) -> None:
    path = sflow.write("wf.yaml", WORKFLOW.replace('  DATA: {uri: "fs:///nonexistent/sflow-data"}\n', ""))
    done = sflow("run", str(path), "--no-tui", "--skip-artifact-check")
    assert done.code == 0, done.err
    assert "sflow: warning:" in done.err and "artifact 'MODEL'" in done.err
    assert not (sflow.tmp / "models").exists()  # left alone, not created


def test_an_existing_fs_artifact_passes_and_a_dry_run_only_warns(sflow: Any) -> None:
    (sflow.tmp / "models" / "llama").mkdir(parents=True)
    path = sflow.write("wf.yaml", WORKFLOW)
    dry = sflow("run", str(path), "--dry-run")
    assert dry.code == 0, dry.err
    assert "sflow: warning:" in dry.err and "artifact 'DATA'" in dry.err and "MODEL" not in dry.err
    ok = sflow.write("ok.yaml", WORKFLOW.replace('  DATA: {uri: "fs:///nonexistent/sflow-data"}\n', ""))
    done = sflow("run", str(ok), "--no-tui")
    assert done.code == 0, done.err
