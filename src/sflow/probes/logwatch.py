"""Follow one attempt's log file and count pattern matches as the output arrives.

The file is opened once and the descriptor kept, so the follower stays on *this* attempt's
file even if the path is later renamed aside for a retry (a descriptor follows the inode, a
path does not). Each read takes only the bytes written since the previous one, at most
`CHUNK` of them, so a flooding service never makes one check block the event loop.

Lines are matched whole. The unfinished last line (a prompt printed without a newline) is
matched provisionally: it counts now, and is counted for good once its newline arrives.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LogFollower:
    """Incremental reader of one file: new complete lines, plus the current unfinished line."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.backlog = False
        self._fd: int | None = None
        self._carry = b""
        self._closed = False
        self._open()

    def _open(self) -> bool:
        """Open the file once it exists; the descriptor then pins it for the follower's life."""
        if self._fd is None and self.path is not None and not self._closed:
            with contextlib.suppress(FileNotFoundError):
                self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd is not None

    def read(self) -> tuple[list[str], str, bool]:
        """(complete lines since the last read, the unfinished line, whether new bytes came)."""
        if not self._open():
            return [], "", False
        assert self._fd is not None
        data = os.read(self._fd, CHUNK)
        self.backlog = len(data) == CHUNK
        if not data:
            return [], _text(self._carry), False
        buffer = self._carry + data
        lines = buffer.splitlines()
        self._carry = b"" if buffer.endswith((b"\n", b"\r")) else lines.pop()
        if len(self._carry) > MAX_LINE:  # an endless line (progress bar): match what we have
            lines.append(self._carry)
            self._carry = b""
        return [_text(line) for line in lines], _text(self._carry), True

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class MatchCounter:
    """Counts occurrences of a regex in complete lines, and provisionally in a partial one."""

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)
        self.committed = 0
        self.last_match = ""

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            hits = sum(1 for _ in self.regex.finditer(line))
            if hits:
                self.committed += hits
                self.last_match = line

    def total(self, partial: str) -> int:
        """Matches so far, counting the unfinished line (which is not committed yet)."""
        if not partial:
            return self.committed
        hits = sum(1 for _ in self.regex.finditer(partial))
        if hits:
            self.last_match = partial
        return self.committed + hits
