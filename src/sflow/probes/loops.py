"""The timing rules around a check: delay, interval, thresholds and the readiness deadline.

Both loops are plain coroutines, meant to run as tasks owned by `ProbedAttempt`, which
cancels them when the attempt ends. Times come from the event loop's monotonic clock.
"""

from __future__ import annotations

import asyncio

from sflow.engine.unit import Outcome
from sflow.probes.checks import Check, CheckResult
from sflow.probes.spec import ProbeSpec


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def try_timeout(spec: ProbeSpec, deadline: float | None, now: float) -> float:
    """How long one try may take: `each_check_timeout`, and never past the deadline."""
    limit = spec.each_check_timeout
    if deadline is not None:
        limit = min(limit, max(deadline - now, 0.05))
    return limit


async def try_once(check: Check, timeout: float) -> CheckResult:
    """One try, cut after `timeout` seconds (a failed answer, like any unexpected error): a probe
    never hangs and never crashes. A check also gets the timeout itself, to say what it waited
    for; whichever of the two notices first gives the answer."""
    # Not `asyncio.wait_for`: before Python 3.12 it may swallow a cancellation that arrives as the
    # try ends, and a probe that is being stopped would then go on forever.
    attempt = asyncio.ensure_future(check.run(timeout))
    try:
        done, _ = await asyncio.wait({attempt}, timeout=timeout)
    finally:
        if not attempt.done():
            attempt.cancel()
            await asyncio.wait({attempt})
    if not done:
        return CheckResult(False, f"check timed out after {timeout:g}s")
    try:
        return attempt.result()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return CheckResult(False, f"{type(exc).__name__}: {exc}")


async def await_ready(check: Check, spec: ProbeSpec, started: float) -> Outcome:
    """Ok once the check passes `success_threshold` times in a row; not ok at the deadline."""
    if check.unusable:
        return Outcome(ok=False, reason=f"readiness probe {check.description}: {check.unusable}")
    clock = asyncio.get_running_loop().time
    deadline = None if spec.timeout is None else started + spec.timeout
    await asyncio.sleep(max(0.0, started + spec.delay - clock()))
    needed = 1 if check.cumulative else spec.success_threshold
    streak = 0
    while True:
        result = await try_once(check, try_timeout(spec, deadline, clock()))
        streak = streak + 1 if result.ok else 0
        if streak >= needed:
            return Outcome(ok=True, reason=f"readiness probe {check.description} passed")
        if deadline is not None and clock() >= deadline:
            return Outcome(ok=False, reason=_not_ready(check, spec, result))
        pause = check.pause(spec.interval)
        if deadline is not None:
            pause = min(pause, max(deadline - clock(), 0.0))
        await asyncio.sleep(pause)


def _not_ready(check: Check, spec: ProbeSpec, last: CheckResult) -> str:
    reason = f"readiness probe {check.description} did not pass within {seconds(spec.timeout)}"
    return f"{reason} (last try: {last.detail})" if last.detail else reason


async def watch_failure(check: Check, spec: ProbeSpec, started: float) -> str | None:
    """Return the reason once the failure probe fires; None if it never can. Runs until cancelled.

    A state check fires after `failure_threshold` failed tries in a row; log_watch fires as
    soon as its pattern has appeared `match_count` times.
    """
    if check.unusable:
        return None
    clock = asyncio.get_running_loop().time
    await asyncio.sleep(max(0.0, started + spec.delay - clock()))
    needed = 1 if check.cumulative else spec.failure_threshold
    streak = 0
    while True:
        result = await try_once(check, try_timeout(spec, None, clock()))
        hit = result.ok if check.cumulative else not result.ok
        streak = streak + 1 if hit else 0
        if streak >= needed:
            return f"failure probe {check.description} fired: {_fired_detail(check, needed, result)}"
        await asyncio.sleep(check.pause(spec.interval))


def _fired_detail(check: Check, needed: int, last: CheckResult) -> str:
    if check.cumulative:
        return last.detail
    tries = "1 failed try" if needed == 1 else f"{needed} failed tries in a row"
    return f"{tries} (last: {last.detail})"
