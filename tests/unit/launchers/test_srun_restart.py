"""A step Slurm could not start for a passing reason is started again within the same attempt
(a stand-in srun on PATH plays the controller; no cluster)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from srun_helpers import context

from sflow.launchers import srun as srun_module
from sflow.launchers.base import get_launcher

FAKE_SRUN = """#!/usr/bin/env bash
# Fails the first $FAILS calls the way srun does while slurmctld is away, then runs the step.
n=$(cat "$COUNT" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$COUNT"
if [ "$n" -le "$FAILS" ]; then
  echo "srun: error: $ERROR" >&2
  exit 1
fi
while [ "$1" != bash ]; do shift; done
export SLURM_JOB_ID=42 SLURM_STEP_ID=$n SLURM_PROCID=0 SLURM_STEP_NUM_TASKS=1
exec "$@"
"""
CONTROLLER_AWAY = (
    "Unable to confirm allocation for job 42: Unable to contact slurm controller (connect failure)"
)


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srun_module, "START_AGAIN_DELAYS", (0.01, 0.02, 0.04))


def _run(tmp_path: Path, fails: int, error: str = CONTROLLER_AWAY, stop_after: float | None = None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    (tmp_path / "train.sh").write_text("echo step ran\n")
    count = tmp_path / "count"
    ctx = context(tmp=tmp_path)
    ctx.base_env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "COUNT": str(count),
        "FAILS": str(fails),
        "ERROR": error,
    }

    async def go():
        attempt = await get_launcher("srun").start(ctx)
        if stop_after is not None:
            await asyncio.sleep(stop_after)
            await attempt.stop(1.0)
        return await attempt.wait()

    outcome = asyncio.run(go())
    return outcome, int(count.read_text()), ctx.log_path.read_text()


def test_a_step_the_controller_could_not_start_is_started_again_in_the_same_attempt(tmp_path: Path) -> None:
    outcome, sruns, log = _run(tmp_path, fails=2)
    assert outcome.ok, outcome.reason
    assert sruns == 3
    assert log.count("sflow: Slurm could not start the step (Unable to confirm allocation") == 2
    assert log.endswith("step ran\n")
    assert outcome.info["slurm_step_id"] == "42.3"


def test_memory_still_counted_as_taken_after_a_restart_passes_too(tmp_path: Path) -> None:
    error = "Unable to create step for job 42: Memory required by task is not available"
    outcome, sruns, _ = _run(tmp_path, fails=1, error=error)
    assert outcome.ok and sruns == 2


def test_an_error_that_does_not_pass_fails_the_attempt_at_once(tmp_path: Path) -> None:
    outcome, sruns, log = _run(
        tmp_path, fails=1, error="Unable to create step for job 42: Invalid job id specified"
    )
    assert not outcome.ok and sruns == 1
    assert "sflow: Slurm could not start" not in log
    assert outcome.reason.startswith("exit code 1 (no step started: Unable to create step")


def test_slurm_refusing_for_longer_than_the_bound_fails_and_says_so(tmp_path: Path) -> None:
    outcome, sruns, _ = _run(tmp_path, fails=10)
    assert not outcome.ok and sruns == 4  # the first srun and one after each of the 3 delays
    assert outcome.reason.endswith("(Slurm could not start the step for 0.07s)")


def test_a_stop_during_the_wait_starts_no_new_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srun_module, "START_AGAIN_DELAYS", (30.0,))
    outcome, sruns, _ = _run(tmp_path, fails=5, stop_after=0.5)
    assert not outcome.ok and sruns == 1
