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
