"""What the engine schedules: units, their attempts, outcomes and the events it emits.

The engine only sees these types; launchers (bash, srun, Python executors) implement
`Attempt`, and the YAML and Python front doors build `Unit`s.
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from sflow.errors import suggest


class State(str, enum.Enum):
    """Life of a unit. READY means a service passed its readiness probe and keeps running."""

    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    RETRYING = "retrying"
    STOPPING = "stopping"  # asked to stop (TERM), within its grace before KILL; not a final state
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED})


class Outcome(msgspec.Struct):
    """How one attempt ended. `reason` is a short human phrase ("exit code 3", "timed out after 5s")."""

    ok: bool
    reason: str = ""
    exit_code: int | None = None
    info: dict[str, Any] = msgspec.field(default_factory=dict)
    retryable: bool = True  # False when another attempt would fail the same way (a mistake in the input)

    def failed(self, reason: str, retryable: bool = True) -> Outcome:
        """The same end (exit code, info) judged a failure for `reason`: a service still needed,
        a probe that fired, an upload that failed."""
        return Outcome(ok=False, reason=reason, exit_code=self.exit_code, info=self.info, retryable=retryable)


def ended_before_ready(outcome: Outcome) -> Outcome:
    """The failure of an attempt that ended (as `outcome` says) before it became ready."""
    how = outcome.reason or ("exit code 0" if outcome.ok else "failed")
    return outcome.failed(f"exited before it became ready ({how})")


class RetryPolicy(msgspec.Struct, frozen=True):
    """`count` extra attempts after the first, waiting `interval * backoff**k` seconds before each."""

    count: int = 0
    interval: float = 0.0
    backoff: float = 1.0

    def delay(self, retry_index: int) -> float:
        """Seconds to wait before retry number `retry_index` (0 for the first retry)."""
        return self.interval * (self.backoff**retry_index)

    @classmethod
    def from_config(cls, value: Any, where: str) -> RetryPolicy:
        """A policy from the `retries` shape of the configuration files and `@f.task(retries=...)`.

        An int is `count` (extra attempts, no wait); a mapping is `{count, interval, backoff}`;
        None means no retry; a policy is returned as is. Anything else is a `ValueError` whose
        message starts with `where`.
        """
        at = f"{where}: " if where else ""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"count": value}
        if not isinstance(value, Mapping):
            raise ValueError(f"{at}'retries' must be an integer or a mapping, got {value!r}")
        unknown = sorted(set(value) - {"count", "interval", "backoff"})
        if unknown:
            hint = suggest(str(unknown[0]), ("count", "interval", "backoff"))
            raise ValueError(
                f"{at}unknown key {unknown[0]!r} in 'retries'{hint} (valid: count, interval, backoff)"
            )
        try:
            policy = cls(
                int(value.get("count", 0)), float(value.get("interval", 0)), float(value.get("backoff", 1))
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{at}bad 'retries': {exc}") from None
        if policy.count < 0 or policy.interval < 0 or policy.backoff < 1:
            raise ValueError(
                f"{at}'retries' needs count >= 0, interval >= 0, backoff >= 1, got count={policy.count}, "
                f"interval={policy.interval:g}, backoff={policy.backoff:g}"
            )
        return policy


class Attempt(abc.ABC):
    """One started attempt of one unit: something running that ends with an `Outcome`."""

    log_path: Path | None = None
    info: dict[str, Any]

    @abc.abstractmethod
    async def wait(self) -> Outcome:
        """Return the outcome once the attempt has ended (it may be awaited more than once)."""

    @abc.abstractmethod
    async def stop(self, grace: float) -> None:
        """Ask the attempt to end (TERM), force it after `grace` seconds (KILL); return once it has."""

    async def ready(self) -> Outcome:
        """Complete once the attempt is ready for dependents (a service); by default at once."""
        return Outcome(ok=True)

    @property
    def has_readiness(self) -> bool:
        """True when `ready()` waits on a probe, so the unit is a service."""
        return False


class Unit(msgspec.Struct):
    """A schedulable task: its dependencies, policies and how to start one attempt.

    `kept` (a reason) marks a unit whose result an earlier run made: it succeeds without starting.
    """

    name: str
    start: Callable[[int], Awaitable[Attempt]]
    deps: tuple[str, ...] = ()
    retries: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout: float | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    kept: str = ""


class Event(msgspec.Struct):
    """A state change of one unit, delivered to every listener as it happens."""

    unit: str
    state: State
    attempt: int
    time: float = msgspec.field(default_factory=time.time)
    outcome: Outcome | None = None
    attempt_obj: Attempt | None = None
    message: str = ""
