"""The end of a log file: failure reports, output patterns and Slurm verdicts all live there.

Logs can be gigabytes; only the last bytes are read. What a task wrote is shown on a terminal
only through `printable`: a log may hold escape sequences (a window title, a screen clear) and
lines of megabytes, which a failure report must not pass on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SHOWN_LINE_CHARS = 400  # longer lines are cut in reports; the log keeps them whole

# OSC (ESC ] ... BEL or ESC \), CSI (ESC [ params final), then any other ESC and its byte, and
# their one-character C1 forms. Patterns, compiled by `re` on first use: a run that prints no log
# line does not build them.
_ESCAPE = (
    r"\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -~]?"
)
_CONTROL = r"[\x00-\x08\x0a-\x1f\x7f-\x9f]"


def read_end(path: Path | str | None, max_bytes: int, since: int = 0) -> str | None:
    """The file's last `max_bytes` (none of it before offset `since`) as text, starting at a line
    when cut; None when it can't be read."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(since, size - max_bytes)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return None
    if start > since:
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace")


def last_lines(path: Path | str | None, lines: int, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a log, trailing blank lines left out (none when it can't be read)."""
    text = read_end(path, max_bytes)
    return text.rstrip().splitlines()[-lines:] if text else []


def printable(text: str, limit: int = SHOWN_LINE_CHARS) -> str:
    """One line of a log made safe to print: escape sequences dropped, other control characters
    spelled out (`\\x07`), and cut after `limit` characters with a word of how much is left out.
    """
    text = re.sub(_CONTROL, lambda m: f"\\x{ord(m.group()):02x}", re.sub(_ESCAPE, "", text))
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters in the log]"
    return text
