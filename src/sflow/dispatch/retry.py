"""Retrying a call: the loop that applies a `RetryPolicy` (count, interval, back-off).

The policy is the engine's own (`sflow.engine.unit.RetryPolicy`), so a dispatch environment,
`@f.task(retries=...)` and a YAML task wait the same way: `policy.delay(0)` before the first
retry, `policy.delay(1)` before the second, and so on.

Executors never retry by themselves (a retry is a new submission with a new call id, so
logs and results of every attempt stay apart); the layer above decides, using this.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sflow.dispatch.errors import DispatchCancelled

if TYPE_CHECKING:
    from sflow.dispatch.executor import Call, Executor
    from sflow.engine.unit import RetryPolicy

log = logging.getLogger(__name__)


async def call_with_retries(executor: Executor, call: Call, policy: RetryPolicy) -> Any:
    """Run `call` on `executor`, resubmitting on failure up to `policy.count` times.

    A cancelled call is not retried; the last failure is raised as is. The attempts share
    one `Call.key` (their own, unless the call has one), so in process a retry never runs
    beside an attempt that timed out and still runs in its thread.
    """
    import asyncio  # this module is imported by the worker, which must start fast
    import dataclasses

    from sflow.dispatch.executor import new_id

    if call.key is None:
        call = dataclasses.replace(call, key=new_id())
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
            await asyncio.sleep(policy.delay(attempt - 1))
            attempt += 1
