"""The `sflow` command's quick way out once it has said everything.

Freeing what a big workflow built takes longer than the operating system takes to reclaim a whole
process: about 0.2 s for 100,000 tasks, one object at a time, then the interpreter's own teardown.
A command that has nothing left to write (a dry run prints, and writes no file) may leave at once
with `leave(code)`. Only the process of the `sflow` command does (the console script and
`python -m sflow` call `own_process()` first): a program that calls the click group itself (a
test's `CliRunner`, a script) keeps its process, and `leave` returns to it.
"""

from __future__ import annotations

import atexit
import os
import sys

_owned = False


def own_process() -> None:
    """This process is the `sflow` command: `leave` may end it."""
    global _owned
    _owned = True


def leave(code: int = 0) -> None:
    """End the process with `code` now if it is the `sflow` command's and no other thread runs in
    it; else return. What the interpreter would do on the way out that others can see is done
    first: the exit functions (logging's flush and close of its handlers...) and the flush of
    stdout and stderr."""
    if not _owned or _other_threads():
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: the usual exit reports it
        return
    os._exit(code)


def _other_threads() -> bool:
    threading = sys.modules.get("threading")
    return threading is not None and threading.active_count() > 1
