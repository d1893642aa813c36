"""The end of a log file: failure reports, output patterns and Slurm verdicts all live there.

Logs can be gigabytes; only the last bytes are read.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_end(path: Path | str | None, max_bytes: int) -> str | None:
    """The file's last `max_bytes` as text, starting at a line when cut; None when it can't be read."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return None
    if size > max_bytes:
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace")


def last_lines(path: Path | str | None, lines: int, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a log, trailing blank lines left out (none when it can't be read)."""
    text = read_end(path, max_bytes)
    return text.rstrip().splitlines()[-lines:] if text else []
