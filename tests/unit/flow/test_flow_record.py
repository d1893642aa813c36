"""The run record of a flow: summary.json and per-attempt task logs, like a YAML run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sflow.flow


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_default_output_dir_and_summary(tmp_path: Path) -> None:
    with sflow.flow("rec", inputs={"n": 2}) as f:

        @f.task
        def a(n):
            return n

        @f.task(map=[1, 2, 3])
        async def b(x, a):
            return x * a

    assert f.run_dir is not None
    assert f.run_dir.parent == tmp_path / "sflow_output"  # the test's working directory
    summary = _summary(f.run_dir)
    assert summary["ok"] is True and summary["workflow"] == "rec"
    assert {n: t["state"] for n, t in summary["tasks"].items()} == {"a": "succeeded", "b": "succeeded"}
    assert summary["tasks"]["b"]["items"] == 3
    assert summary["tasks"]["b"]["environment"] == "local"
    log = (f.run_dir / "a" / "a.log").read_text()
    assert "started:" in log and "ended:" in log and "outcome: succeeded" in log


def test_failure_is_recorded_with_traceback(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), sflow.flow("recfail", output_dir=tmp_path / "out") as f:

        @f.task(retries=1)
        def divide():
            return 1 / 0

        @f.task
        def after(divide):
            return divide

    assert f.run_dir is not None and f.run_dir.parent == tmp_path / "out"
    summary = _summary(f.run_dir)
    assert summary["ok"] is False
    assert summary["tasks"]["divide"]["state"] == "failed"
    assert summary["tasks"]["divide"]["attempts"] == 2
    assert summary["tasks"]["divide"]["reason"] == "ZeroDivisionError: division by zero"
    assert summary["tasks"]["after"]["state"] == "cancelled"
    log = (f.run_dir / "divide" / "divide.log").read_text()
    assert "attempt: 2" in log and "Traceback" in log and "1 / 0" in log
    assert (f.run_dir / "divide" / "divide.attempt1.log").exists()  # earlier attempts are kept
    events = (f.run_dir / "events.jsonl").read_text().splitlines()
    assert any(json.loads(e)["state"] == "retrying" for e in events)


def test_record_false_writes_nothing(tmp_path: Path) -> None:
    with sflow.flow("norec", record=False) as f:
        f.task(lambda: 1, name="a")
    assert f.run_dir is None
    assert not (tmp_path / "sflow_output").exists()
