"""A mapped task's items, each attempted on its own: per-item retries and timeouts.

A map is one engine unit that fans out internally. Without a per-item rule its items take
the in-process fast path (`sflow.dispatch.in_process`). `retries` and `timeout` of a map
apply to each item (`ItemRetry`): an item is attempted again on its own, and only its own
attempt is timed out. Items with such a rule run one coroutine each (with a timeout, a
sync item's attempt in a thread of its own), which costs more than the fast path, so that
path is kept for maps without one. The first item out of attempts stops the map and is
raised as it was, with notes naming the item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sflow.engine import RetryPolicy
from sflow.flow.errors import TaskTimeout, add_note

MISSING: Any = object()  # an item without a result yet


def note_item(exc: BaseException, task: str, index: int, total: int, attempts: int = 1) -> None:
    """Say which item raised (and after how many attempts), without changing the exception."""
    add_note(exc, f"sflow: raised by item {index} of {total} of mapped task '{task}'")
    if attempts > 1:
        add_note(exc, f"sflow: item {index} of mapped task '{task}' failed on all {attempts} attempts")


NEVER_CALLED = "this attempt never called the function: an earlier attempt's call was still running"

ItemReport = Callable[[int, int, BaseException | None, bool], None]


def _unheard(index: int, attempt: int, error: BaseException | None, retried: bool) -> None:
    return None


@dataclass(frozen=True)
class ItemRetry:
    """Each item's own attempts: `policy` retries, `timeout` seconds per attempt.

    `report(index, attempt, error, retried)` hears of every failed attempt (`retried` says
    whether another follows) and of an item succeeding after a failure (`error` None).
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    report: ItemReport = _unheard

    @property
    def needed(self) -> bool:
        """Whether items need attempts of their own (else the fast path runs them)."""
        return self.policy.count > 0 or self.timeout is not None


async def within(work: Awaitable[Any], timeout: float, timed_out: Callable[[], BaseException]) -> Any:
    """Await `work`; after `timeout` seconds cancel it, wait until it is cancelled, raise `timed_out()`."""
    inner = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        inner.cancel()
        await asyncio.wait({inner})
        raise
    if not done:
        inner.cancel()
        await asyncio.wait({inner})
        raise timed_out()
    return inner.result()


async def map_items(
    task: str,
    attempt: Callable[[int], Callable[[dict[str, Any]], Awaitable[Any]]],
    total: int,
    indices: Sequence[int],
    out: list[Any],
    limit: int | None,
    rule: ItemRetry,
) -> None:
    """`out[i]` for every index, each item attempted on its own until it succeeds or `rule` gives up.

    `attempt(i)(info)` starts one attempt of item `i`; it sets `info["waiting"]` while it waits
    for an earlier attempt's call to return (a sync function cannot be interrupted), which
    counts against its timeout. At most `limit` attempts run at once. A failed item goes to
    the back of the queue after its retry interval, so it holds no slot while it waits. The
    first item out of attempts stops the map; its error is raised with notes naming it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for i in indices:
        queue.put_nowait((i, 1))
    left = len(indices)
    all_done: asyncio.Future[None] = loop.create_future()
    timers: list[asyncio.TimerHandle] = []

    async def worker() -> None:
        nonlocal left
        while True:
            i, number = await queue.get()
            try:
                out[i] = await _timed(task, i, number, rule.timeout, attempt(i))
            except Exception as exc:
                retried = number <= rule.policy.count
                rule.report(i, number, exc, retried)
                if not retried:
                    note_item(exc, task, i, total, number)
                    raise
                delay = rule.policy.delay(number - 1)
                timers.append(loop.call_later(delay, queue.put_nowait, (i, number + 1)))
                continue
            if number > 1:
                rule.report(i, number, None, False)
            left -= 1
            if left == 0:
                all_done.set_result(None)

    count = len(indices) if limit is None else max(1, min(limit, len(indices)))
    workers = [asyncio.ensure_future(worker()) for _ in range(count)] if indices else []
    if not workers:
        return
    try:
        await asyncio.wait([all_done, *workers], return_when=asyncio.FIRST_COMPLETED)
        for w in workers:
            if w.done():
                w.result()  # a worker ends only by raising an item's last error
    finally:
        for timer in timers:
            timer.cancel()
        await _cancel(workers)
        all_done.cancel()


async def _timed(
    task: str,
    index: int,
    number: int,
    timeout: float | None,
    attempt: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Any:
    info: dict[str, Any] = {}
    if timeout is None:
        return await attempt(info)
    return await within(
        attempt(info),
        timeout,
        lambda: TaskTimeout(task, timeout, number, NEVER_CALLED if info.get("waiting") else "", index),
    )


async def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)
