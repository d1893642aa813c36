"""SIGTERM while a flow runs in its own event loop: the same clean stop as Ctrl-C.

Without it, SIGTERM's default action ends the process at once, leaving the flow's worker
processes and Slurm jobs running and its record without a summary.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143: what a shell reports for a process SIGTERM ended


async def stopped_cleanly_on_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`; a SIGTERM cancels it (tasks stopped, executors closed, record written),
    then raises `SystemExit(143)`, the status the signal would have given.

    Only where SIGTERM would otherwise end the process outright (the main thread, SIGTERM at
    its default action): a program with a SIGTERM handler of its own keeps it.
    """
    task = asyncio.ensure_future(work)
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        return await task
    received = False

    def on_sigterm() -> None:
        nonlocal received
        received = True
        task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise SystemExit(EXIT_SIGTERM) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
