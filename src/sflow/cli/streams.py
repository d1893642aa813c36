"""The standard streams of a command whose reader went away."""

from __future__ import annotations

import os
from typing import IO


def to_devnull(stream: IO[str]) -> None:
    """Send what is still written to `stream` (and its last flush at exit) to /dev/null.

    For a stream whose reader went away (`sflow run | head -1`): nothing more can reach it, and
    each write would fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a file (a test's StringIO), or already closed
        pass
