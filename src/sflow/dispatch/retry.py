"""Retrying a call: a policy (count, interval, back-off) and the loop that applies it.

Executors never retry by themselves (a retry is a new submission with a new call id, so
logs and results of every attempt stay apart); the layer above decides, using this.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sflow.dispatch.errors import DispatchCancelled, DispatchConfigError

if TYPE_CHECKING:
    from sflow.dispatch.executor import Call, Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """`count` extra attempts, waiting `interval * backoff**k` seconds before attempt k+2."""

    count: int = 0
    interval: float = 0.0
    backoff: float = 1.0

    @classmethod
    def parse(cls, value: Any, where: str) -> RetryPolicy:
        """From an int (`count`) or a mapping `{count, interval, backoff}`; None means no retry."""
        if value is None:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"count": value}
        if not isinstance(value, Mapping):
            raise DispatchConfigError(f"{where}: 'retries' must be an integer or a mapping, got {value!r}")
        unknown = sorted(set(value) - {"count", "interval", "backoff"})
        if unknown:
            raise DispatchConfigError(
                f"{where}: unknown key {unknown[0]!r} in 'retries' (valid: count, interval, backoff)"
            )
        try:
            policy = cls(
                int(value.get("count", 0)), float(value.get("interval", 0)), float(value.get("backoff", 1))
            )
        except (TypeError, ValueError) as exc:
            raise DispatchConfigError(f"{where}: bad 'retries': {exc}") from exc
        if policy.count < 0 or policy.interval < 0 or policy.backoff < 1:
            raise DispatchConfigError(f"{where}: 'retries' needs count >= 0, interval >= 0, backoff >= 1")
        return policy

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return self.interval * self.backoff ** (attempt - 1)


async def call_with_retries(executor: Executor, call: Call, policy: RetryPolicy) -> Any:
    """Run `call` on `executor`, resubmitting on failure up to `policy.count` times.

    A cancelled call is not retried; the last failure is raised as is.
    """
    import asyncio  # this module is imported by the worker, which must start fast

    attempt = 1
    while True:
        handle = await executor.submit(call)
        try:
            return await handle.result()
        except DispatchCancelled:
            raise
        except Exception as exc:
            if attempt > policy.count:
                raise
            log.info(
                "%s failed (%s); attempt %d of %d", call.display_name, exc, attempt + 1, policy.count + 1
            )
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1
