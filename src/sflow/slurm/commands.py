"""Run Slurm client commands from async code without blocking the loop, retrying politely.

Why a helper: every Slurm call sflow makes (salloc, sbatch, scancel, squeue, scontrol), from
the slurm backend, the srun launcher, `sflow batch` and the dispatch Slurm executor alike, must
not block the event loop, must be bounded in time, and must survive a controller that is
briefly busy or restarting ("Socket timed out", "Unable to contact slurm controller").

Retries depend on what the command does:
- queries and cancels (`RETRY_QUERY`) are idempotent: any transient error is retried with
  exponential back-off;
- submissions (`RETRY_SUBMIT`: sbatch, salloc) are retried only when the controller was never
  reached, so a retry can never create a second job; an ambiguous "Socket timed out" after a
  submission is reported instead, with a hint to check squeue. A caller that can recognise its
  own job (the dispatch executor tags each sbatch with a unique comment) passes
  `find_submitted`: then every transient error is retried, and before each retry that lookup
  may hand back the job an earlier try created, which is adopted instead of submitting again.

Slurm's job-state names (which states are final, which hold nodes) live here too, so every
caller reads squeue and scontrol the same way. The one rule for a `--time` value is
`sflow.schema.durations.slurm_time`, beside the rule for every other duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sflow.errors import BackendError

log = logging.getLogger(__name__)

RetryKind = Literal["query", "submit", "none"]
RETRY_QUERY: RetryKind = "query"
RETRY_SUBMIT: RetryKind = "submit"
RETRY_NONE: RetryKind = "none"

# Errors that mean "the controller is busy or away for a moment", not "this request is wrong".
TRANSIENT_MARKERS = (
    "socket timed out",
    "unable to contact slurm controller",
    "slurm temporarily unable",
    "resource temporarily unavailable",
    "zero bytes were transmitted",
    "transport endpoint is not connected",
    "connection refused",
    "slurmctld not responding",
    "timed out",
)
# Of those, the ones where a submission certainly did not reach the controller.
NOT_SUBMITTED_MARKERS = ("connect failure", "connection refused")
# "Invalid job id specified": the job (or step) is finished and purged, or never existed.
INVALID_JOB_RE = re.compile(r"invalid job id", re.IGNORECASE)

# Slurm's job states (squeue %T, scontrol JobState) after which a job will never run again.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
# States in which the job holds its nodes (its programs run, start or wind down).
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"})


def normalize_state(raw: str) -> str:
    """A job state as Slurm prints it, reduced to its name: `CANCELLED by 0`, `cancelled+` → `CANCELLED`."""
    return raw.strip().split()[0].rstrip("+").upper() if raw.strip() else "UNKNOWN"


class SlurmCommandError(BackendError):
    """A Slurm client command failed; the message is Slurm's own (its stderr)."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        what = "gave no answer in time" if returncode is None else f"failed (exit {returncode})"
        super().__init__(f"{self.argv[0]} {what}: {self.stderr or '(no output)'}")

    @property
    def transient(self) -> bool:
        return self.returncode is None or is_transient(self.stderr)

    @property
    def invalid_job(self) -> bool:
        """True when Slurm says the job id is unknown (finished and purged, or never existed)."""
        return bool(INVALID_JOB_RE.search(self.stderr))


@dataclass(frozen=True)
class SlurmResult:
    """Decoded output of a command that succeeded."""

    stdout: str
    stderr: str = ""


# Looks for a job an earlier, ambiguous submission created; its result stands in for sbatch's.
SubmittedLookup = Callable[[], Awaitable[SlurmResult | None]]


def is_transient(text: str) -> bool:
    """True for errors that mean "try again later"."""
    low = text.lower()
    return any(marker in low for marker in TRANSIENT_MARKERS)


def should_retry(error: SlurmCommandError, kind: RetryKind, *, can_find_submitted: bool = False) -> bool:
    """Whether `error` may be retried for a command of this kind (see the module docstring)."""
    if kind == RETRY_NONE or not error.transient:
        return False
    if kind == RETRY_SUBMIT and not can_find_submitted:
        low = error.stderr.lower()
        return error.returncode is not None and any(m in low for m in NOT_SUBMITTED_MARKERS)
    return True


async def run_once(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    error_type: type[SlurmCommandError] = SlurmCommandError,
) -> SlurmResult:
    """Run `argv` once; its output, or `error_type` (a `SlurmCommandError`) on failure or timeout."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise error_type(argv, 127, f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        await _kill(proc)
        raise error_type(argv, None, f"no answer within {timeout:g}s") from None
    except asyncio.CancelledError:
        await asyncio.shield(_kill(proc))
        raise
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if proc.returncode != 0:
        raise error_type(argv, proc.returncode, stderr or stdout)
    return SlurmResult(stdout, stderr)


async def run_slurm(
    argv: Sequence[str],
    *,
    retry: RetryKind = RETRY_QUERY,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    attempts: int = 6,
    first_delay: float = 0.5,
    find_submitted: SubmittedLookup | None = None,
    error_type: type[SlurmCommandError] = SlurmCommandError,
) -> SlurmResult:
    """`run_once` with back-off (0.5 s, 1 s, 2 s, ... capped at 30 s) on retryable errors.

    `find_submitted` (submissions only, see the module docstring) runs after each back-off,
    before the retry; a result from it is returned as the submission's. `error_type` lets a
    caller raise its own subclass of `SlurmCommandError`.
    """
    can_find = retry == RETRY_SUBMIT and find_submitted is not None
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await run_once(argv, env=env, timeout=timeout, error_type=error_type)
        except SlurmCommandError as exc:
            if attempt == attempts or not should_retry(exc, retry, can_find_submitted=can_find):
                if retry == RETRY_SUBMIT and exc.transient:
                    exc.args = (f"{exc.args[0]} (the request may have been submitted: check squeue)",)
                raise
            log.warning("%s: %s; retry %d/%d in %gs", argv[0], exc.stderr, attempt, attempts - 1, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
        if can_find:
            assert find_submitted is not None
            found = await find_submitted()
            if found is not None:
                return found
    raise AssertionError("unreachable")


async def scancel(target: str, *, signal: str | None = None, quiet_if_gone: bool = True) -> bool:
    """Cancel (or signal) a job or step `target` ("123" or "123.4"); False when it was already gone."""
    argv = ["scancel", *([f"--signal={signal}"] if signal else []), target]
    try:
        await run_slurm(argv, retry=RETRY_QUERY, timeout=30.0)
    except SlurmCommandError as exc:
        if quiet_if_gone and exc.invalid_job:
            return False
        raise
    return True


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
