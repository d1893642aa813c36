"""Calling a user callable that may be sync or async, outside any running event loop.

Shared by the worker process and the process-pool executor, which both run calls in a
plain thread with no loop of their own. asyncio is imported only for async callables: a
worker process starts once per call, and most calls are plain functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`fn(*args, **kwargs)`; a coroutine function (or a returned awaitable) runs in a fresh loop."""
    if inspect.iscoroutinefunction(fn):
        return _run_awaitable(fn(*args, **kwargs))
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):
        return _run_awaitable(value)
    return value


def _run_awaitable(awaitable: Any) -> Any:
    import asyncio

    async def _await() -> Any:
        return await awaitable

    return asyncio.run(_await())
