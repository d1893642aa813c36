"""`sflow.slurm.commands`: retries on a busy controller, never a second submission (fake commands)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sflow.slurm.commands import (
    RETRY_QUERY,
    RETRY_SUBMIT,
    SlurmCommandError,
    SlurmResult,
    is_transient,
    run_slurm,
    should_retry,
)


def flaky(tmp_path: Path, failures: int, message: str) -> list[str]:
    """A command that fails `failures` times with `message` on stderr, then prints 'ok'."""
    counter = tmp_path / "count"
    code = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"if n < {failures}:\n"
        f"    sys.stderr.write({message!r}); sys.exit(1)\n"
        "print('ok')\n"
    )
    return [sys.executable, "-c", code]


def calls(tmp_path: Path) -> int:
    return int((tmp_path / "count").read_text())


def test_query_retries_socket_timeouts(tmp_path: Path) -> None:
    argv = flaky(tmp_path, 2, "squeue: error: Socket timed out on send/recv operation")
    result = asyncio.run(run_slurm(argv, retry=RETRY_QUERY, first_delay=0.01))
    assert result.stdout.strip() == "ok" and calls(tmp_path) == 3


def test_submission_retries_only_when_the_controller_was_never_reached(tmp_path: Path) -> None:
    argv = flaky(tmp_path, 1, "sbatch: error: Unable to contact slurm controller (connect failure)")
    assert asyncio.run(run_slurm(argv, retry=RETRY_SUBMIT, first_delay=0.01)).stdout.strip() == "ok"

    other = tmp_path / "b"
    other.mkdir()
    argv = flaky(other, 1, "sbatch: error: Socket timed out on send/recv operation")
    with pytest.raises(SlurmCommandError, match="check squeue"):
        asyncio.run(run_slurm(argv, retry=RETRY_SUBMIT, first_delay=0.01))
    assert calls(other) == 1


def test_submission_that_can_find_its_job_retries_ambiguous_errors(tmp_path: Path) -> None:
    looked: list[int] = []

    async def nothing_yet() -> SlurmResult | None:
        looked.append(calls(tmp_path))
        return None

    argv = flaky(tmp_path, 2, "sbatch: error: Socket timed out on send/recv operation")
    result = asyncio.run(run_slurm(argv, retry=RETRY_SUBMIT, first_delay=0.01, find_submitted=nothing_yet))
    assert result.stdout.strip() == "ok" and calls(tmp_path) == 3
    assert looked == [1, 2]  # after each failed try, before the next one


def test_a_job_found_after_an_ambiguous_submission_is_adopted(tmp_path: Path) -> None:
    async def found() -> SlurmResult | None:
        return SlurmResult("555\n")

    argv = flaky(tmp_path, 3, "sbatch: error: Socket timed out on send/recv operation")
    result = asyncio.run(run_slurm(argv, retry=RETRY_SUBMIT, first_delay=0.01, find_submitted=found))
    assert result.stdout == "555\n" and calls(tmp_path) == 1


def test_a_real_error_is_not_retried_and_keeps_slurms_message(tmp_path: Path) -> None:
    argv = flaky(tmp_path, 5, "salloc: error: Invalid partition name specified")
    with pytest.raises(SlurmCommandError, match="Invalid partition name specified") as info:
        asyncio.run(run_slurm(argv, first_delay=0.01))
    assert calls(tmp_path) == 1 and not info.value.transient


def test_timeout_is_a_transient_error() -> None:
    with pytest.raises(SlurmCommandError) as info:
        asyncio.run(run_slurm(["sleep", "5"], timeout=0.1, attempts=1))
    assert info.value.returncode is None and info.value.transient


def test_should_retry_matrix() -> None:
    def err(text: str, code: int | None = 1) -> SlurmCommandError:
        return SlurmCommandError(["x"], code, text)

    assert should_retry(err("Socket timed out"), RETRY_QUERY)
    assert not should_retry(err("Socket timed out"), RETRY_SUBMIT)
    assert should_retry(err("Unable to contact slurm controller (connect failure)"), RETRY_SUBMIT)
    assert not should_retry(err("x", None), RETRY_SUBMIT)
    assert not should_retry(err("Invalid job id specified"), RETRY_QUERY)
    assert should_retry(err("Socket timed out"), RETRY_SUBMIT, can_find_submitted=True)
    assert not should_retry(err("Invalid partition name specified"), RETRY_SUBMIT, can_find_submitted=True)
    assert err("Kill job error on job id 5: Invalid job id specified").invalid_job


def test_transient_markers() -> None:
    assert is_transient("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation")
    assert is_transient("squeue: error: slurmctld not responding")
    assert is_transient("scontrol: error: Request timed out")
    assert not is_transient("sbatch: error: invalid partition specified: nope")
