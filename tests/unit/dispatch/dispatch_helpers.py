"""Callables the dispatch tests ship to workers (importable by name from this directory)."""

from __future__ import annotations

import asyncio
import os
import time


class CustomError(Exception):
    """An exception type the caller can import too: it must come back as itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


def add(a: int, b: int = 0) -> int:
    return a + b


async def async_add(a: int, b: int = 0) -> int:
    await asyncio.sleep(0.01)
    return a + b


def fail(message: str) -> None:
    raise CustomError(message, 42)


def nested_fail() -> None:
    def inner() -> None:
        raise KeyError("deep")

    inner()


def sleep_then(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


async def async_sleep_then(seconds: float, value: object = None) -> object:
    await asyncio.sleep(seconds)
    return value


def hard_exit(code: int) -> None:
    os._exit(code)


def whoami() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "job": os.environ.get("SLURM_JOB_ID"),
        "secret_in_env": "SFLOW_BACKEND_SECRET" in os.environ,
    }


def big_value(size: int) -> bytes:
    return b"x" * size


class Unpicklable(Exception):
    def __reduce__(self) -> object:
        raise TypeError("no pickling")


def fail_unpicklable() -> None:
    raise Unpicklable("cannot travel as a pickle")


def once_file_exists(path: str, value: object = None, limit: float = 60) -> object:
    """Return `value` once `path` exists (the test's go-ahead); a `TimeoutError` after `limit` s."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {limit} s")
        time.sleep(0.01)
    return value
