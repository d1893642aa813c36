"""Running Slurm client commands without blocking the event loop, with polite retries.

`sbatch`, `squeue`, `scancel` are run with `asyncio.create_subprocess_exec` (never
`subprocess.run` inside async code), each bounded by a timeout. Errors that mean "the
controller is busy or briefly away" are retried with exponential back-off; anything else
fails at once with the command's own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sflow.dispatch.errors import DispatchError

log = logging.getLogger(__name__)

TRANSIENT_MARKERS = (
    "socket timed out",
    "unable to contact slurm controller",
    "slurm temporarily unable",
    "resource temporarily unavailable",
    "zero bytes were transmitted",
    "transport endpoint is not connected",
    "connection refused",
    "timed out",
)


class SlurmCommandError(DispatchError):
    """A Slurm client command failed; `transient` when retrying may help."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        self.transient = is_transient(self.stderr) or returncode is None
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{self.argv[0]} {what}: {self.stderr or '(no output)'}")


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str


def is_transient(stderr: str) -> bool:
    """True for errors that mean "try again later" rather than "this request is wrong"."""
    text = stderr.lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


async def run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> CommandResult:
    """Run `argv`; return its output, or raise `SlurmCommandError` on failure or timeout."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise SlurmCommandError(argv, 127, f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        await _reap(proc)
        raise SlurmCommandError(argv, None, f"no answer within {timeout} s") from None
    except asyncio.CancelledError:
        await asyncio.shield(_reap(proc))
        raise
    if proc.returncode != 0:
        raise SlurmCommandError(
            argv, proc.returncode, err.decode(errors="replace") or out.decode(errors="replace")
        )
    return CommandResult(out.decode(errors="replace"), err.decode(errors="replace"))


async def run_with_retry(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    attempts: int = 5,
    first_delay: float = 0.5,
    timeout: float = 60.0,
    before_retry: Callable[[SlurmCommandError], Awaitable[CommandResult | None]] | None = None,
) -> CommandResult:
    """`run` with back-off on transient errors.

    `before_retry(error)` may return a result to use instead of retrying: sbatch uses it to
    adopt a job that was in fact created before the controller's answer was lost.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await run(argv, env=env, timeout=timeout)
        except SlurmCommandError as exc:
            if not exc.transient or attempt == attempts:
                raise
            log.warning(
                "%s failed (%s); retry %d/%d in %.1f s", argv[0], exc.stderr, attempt, attempts - 1, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            if before_retry is not None:
                adopted = await before_retry(exc)
                if adopted is not None:
                    return adopted
    raise AssertionError("unreachable")


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
