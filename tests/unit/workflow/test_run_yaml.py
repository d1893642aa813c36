"""`sflow.run_yaml`: a YAML workflow run from Python on the same engine as `sflow run`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sflow
import sflow.errors
from sflow.engine import State

WORKFLOW = """\
version: "0.1"
variables:
  GREETING: {value: hello}
workflow:
  name: tiny
  tasks:
    - name: first
      script:
        - echo "${GREETING} from first"
    - name: second
      depends_on: [first]
      script:
        - echo "second saw ${GREETING}"
"""

FAILING = """\
version: "0.1"
workflow:
  name: broken
  tasks:
    - name: bad
      script: ["exit 3"]
    - name: after
      depends_on: [bad]
      script: ["echo never"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


def test_run_yaml_with_sets(tmp_path: Path) -> None:
    result = sflow.run_yaml(_write(tmp_path, WORKFLOW), sets={"GREETING": "hi"}, output_dir=tmp_path / "out")
    assert result.ok
    assert result.states == {"first": State.SUCCEEDED, "second": State.SUCCEEDED}
    assert result.run_dir.parent == tmp_path / "out"
    assert result.summary["tasks"]["second"]["state"] == "succeeded"
    assert "second saw hi" in result.log("second").read_text()


def test_run_yaml_failure_raises_with_details(tmp_path: Path) -> None:
    with pytest.raises(sflow.WorkflowFailed, match="'bad'") as info:
        sflow.run_yaml([_write(tmp_path, FAILING)], output_dir=tmp_path / "out")
    result = info.value.result
    assert isinstance(result, sflow.YamlRunResult)
    assert result.states["bad"] is State.FAILED and result.states["after"] is State.CANCELLED


def test_run_yaml_check_false_returns(tmp_path: Path) -> None:
    result = sflow.run_yaml(_write(tmp_path, FAILING), output_dir=tmp_path / "out", check=False)
    assert not result.ok


def test_run_yaml_async_and_loop_guard(tmp_path: Path) -> None:
    path = _write(tmp_path, WORKFLOW)

    async def main() -> sflow.YamlRunResult:
        with pytest.raises(sflow.errors.SflowError, match="run_yaml_async"):
            sflow.run_yaml(path)
        return await sflow.run_yaml_async(path, ["GREETING=yo"], output_dir=tmp_path / "out")

    result = asyncio.run(main())
    assert result.ok and "second saw yo" in result.log("second").read_text()


ARTIFACTS = """\
version: "0.1"
artifacts:
  MODEL: {uri: "fs://models/llama"}
workflow:
  name: art
  tasks:
    - name: t
      script: ['echo "model=$MODEL"']
"""


def test_run_yaml_checks_fs_artifacts_before_anything_starts_as_sflow_run_does(tmp_path: Path) -> None:
    path = _write(tmp_path, ARTIFACTS)
    with pytest.raises(sflow.errors.SpecError) as info:
        sflow.run_yaml(path, workspace_dir=tmp_path, output_dir=tmp_path / "out")
    assert f"{path}:3: artifacts.MODEL.uri: artifact 'MODEL': {tmp_path}/models/llama does not exist" in str(
        info.value
    )
    assert "skip_artifact_check=True" in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing ran


def test_run_yaml_skip_artifact_check_warns_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, ARTIFACTS)
    result = sflow.run_yaml(
        path, workspace_dir=tmp_path, output_dir=tmp_path / "out", skip_artifact_check=True
    )
    assert result.ok
    assert "sflow: warning:" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()  # left alone, not created


def test_a_fresh_run_hands_no_work_to_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a resumed run has earlier tasks to link (in a thread); a fresh one has none to start."""
    handed: list[str] = []
    real = asyncio.to_thread

    async def to_thread(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        handed.append(fn.__name__)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    assert sflow.run_yaml(_write(tmp_path, WORKFLOW), output_dir=tmp_path / "out").ok
    assert "_keep_earlier" not in handed
