"""Callables and exception types the flow tests ship to worker processes (importable by name)."""

from __future__ import annotations

import os


class PipelineError(Exception):
    """A user exception type that must come back from a worker as itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


def double(x: int) -> int:
    return 2 * x


def where(x: int = 0) -> tuple[int, int]:
    return x, os.getpid()


def explode(x: int) -> int:
    raise PipelineError(f"bad item {x}", 7)


def fails_once(x: int, marks: str) -> int:
    """Fails the first time it is called with `x` (a marker file per item says it was), then returns x."""
    try:
        os.close(os.open(os.path.join(marks, str(x)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return x
    raise PipelineError(f"first attempt of item {x}", 3)


def explode_seven(x: int) -> int:
    if x == 7:
        raise PipelineError(f"bad item {x}", 7)
    return x
