"""Files a user names with `-o`: their folder is made, and a path that cannot be written is one line.

`sflow batch` has always made the folders of its script; the other commands that write a file
(`compose`, `visualize`, `report`, `sample`) do the same, and none of them ends in a traceback
because the place was wrong (a file where a folder should be, no permission).
"""

from __future__ import annotations

import os
from pathlib import Path

from sflow.errors import UserError


def ready_for(path: Path) -> Path:
    """Make `path`'s folder (and its parents) so the file can be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {_why(exc)}") from None
    return path


def write_output(path: Path, text: str) -> Path:
    """Write `text` to `path`, making its folder first."""
    ready_for(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {_why(exc)}") from None
    return path


def names_a_folder(given: str) -> bool:
    """`-o out/` (a trailing separator) or an existing folder: put the file inside it."""
    return given.endswith(("/", os.sep)) or Path(given).is_dir()


def _why(exc: OSError) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "a part of the path is a file, not a folder"
    return exc.strerror or str(exc)
