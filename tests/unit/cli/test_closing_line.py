"""The closing line of `sflow run` gives the whole run's time, not the engine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflow.cli.run import report
from sflow.engine import RunResult


def test_a_run_that_failed_before_its_engine_started_gives_the_time_it_really_took(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a refused allocation: the engine never started, so its own clock says nothing
    result = RunResult(units={}, stop_reason="Slurm refused the allocation", elapsed=0.0)
    report(result, {}, tmp_path, took=9.2)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("sflow: workflow failed after 9.20s: Slurm refused the allocation")


def test_a_successful_run_gives_the_time_it_took(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report(RunResult(units={}, elapsed=0.001), {}, tmp_path, took=1.5)
    assert "workflow succeeded in 1.50s" in capsys.readouterr().err
