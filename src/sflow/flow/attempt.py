"""One attempt of a flow task, as the engine sees it, and its log file.

The engine supervises an `Attempt`: `wait()` gives the outcome, `stop()` cancels it. Here
the attempt is an asyncio task running the flow's own coroutine for that task, which turns
every ending (value, exception, cancellation) into an `Outcome`, so the engine never sees
an exception from user code.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sflow.engine import Attempt, Outcome


class TaskAttempt(Attempt):
    """An attempt running `work` (a coroutine that returns an `Outcome`, never raises)."""

    def __init__(
        self, work: Coroutine[Any, Any, Outcome], info: dict[str, Any], log_path: Path | None
    ) -> None:
        self.info = info
        self.log_path = log_path
        self._task: asyncio.Task[Outcome] = asyncio.ensure_future(work)

    async def wait(self) -> Outcome:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # the waiter itself was cancelled
            return Outcome(ok=False, reason="cancelled", info=self.info)

    async def stop(self, grace: float) -> None:
        """Cancel the work; its cleanup (e.g. scancel of its jobs) finishes before this returns."""
        self._task.cancel()
        await asyncio.wait({self._task})


def short_reason(exc: BaseException) -> str:
    """`ValueError: bad input`, first line only, bounded: for summary.json and sflow.log."""
    text = str(exc).strip().splitlines()
    head = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return head if len(head) <= 300 else head[:297] + "..."


class TaskLog:
    """The per-attempt log of a task run by a flow: when, where, how it ended, the traceback.

    Written off the event loop (a thread), at the start and at the end of the attempt.
    """

    def __init__(self, path: Path, task: str, attempt: int, where: str) -> None:
        self.path = path
        self.task = task
        self.attempt = attempt
        self.where = where
        self.started = time.time()

    async def start(self) -> None:
        lines = [
            f"task: {self.task}",
            f"attempt: {self.attempt}",
            f"environment: {self.where}",
            f"started: {_stamp(self.started)}",
        ]
        await asyncio.to_thread(self._write, "w", lines)

    async def end(self, info: dict[str, Any], error: BaseException | None, cancelled: bool = False) -> None:
        ended = time.time()
        lines = [f"{key}: {value}" for key, value in info.items() if key not in ("environment",)]
        lines.append(f"ended: {_stamp(ended)} ({ended - self.started:.3f}s)")
        if cancelled:
            lines.append("outcome: cancelled")
        elif error is None:
            lines.append("outcome: succeeded")
        else:
            lines.append(f"outcome: failed ({short_reason(error)})")
            lines.append(
                "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
            )
        await asyncio.to_thread(self._write, "a", lines)

    def _write(self, mode: str, lines: list[str]) -> None:
        with open(self.path, mode, encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
