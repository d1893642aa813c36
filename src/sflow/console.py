"""The `sflow` console script.

`sflow --help` is most people's first command, and loading click costs more than the rest of it:
it is answered from the copy of the help text below (which a test keeps equal to what click
prints), at the width click would use. Everything else goes to the click group, `sflow.cli.main`.
This module lives outside `sflow.cli`, whose import loads click. After changing a command's first
docstring line or the group's options, write the copy again with `python -m sflow.console`.
"""

from __future__ import annotations

import gc
import os
import sys

HELP_WIDTH = 80  # click wraps help at min(terminal columns, 80) - 2: from 80 columns on, one text
GC_THRESHOLD = 100_000  # new objects between two collections of garbage cycles (Python's: 700)


def run() -> None:
    """The `sflow` console script."""
    if sys.argv[1:] in (["--help"], ["-h"]) and _columns() >= HELP_WIDTH:
        sys.stdout.write(HELP)
        return
    # A command's start makes tens of thousands of objects (its modules, its workflow) that all
    # live on: at Python's threshold, the collector runs some 50 times over them and frees
    # nothing, a few milliseconds of a short command. Later cycles are still collected.
    gc.set_threshold(GC_THRESHOLD)
    from sflow.cli import main

    try:
        main()
    except SystemExit as done:
        _end_now(done.code)
        raise


def _end_now(code: object) -> None:
    """End the process with `code` without the interpreter's teardown, once all is said.

    The teardown frees every module's objects one by one: for a short command, a good part of its
    time. What the normal exit does before it is done here too: the exit handlers run and the
    standard streams are flushed. The normal exit stays for what it handles: a thread that is
    not a daemon (it waits for it), an exit code that is a message, a stream that cannot be flushed.
    """
    import threading

    if not (code is None or isinstance(code, int)):
        return
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    import atexit

    atexit._run_exitfuncs()
    atexit._clear()  # run once, even if the normal exit follows
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code or 0)


def _columns() -> int:
    """The terminal width click would see (COLUMNS, else the terminal's, else 80)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else HELP_WIDTH
    except (OSError, ValueError):
        return HELP_WIDTH


HELP = """\
Usage: sflow [OPTIONS] COMMAND [ARGS]...

  Describe a DAG of tasks once; run it on a laptop or on a Slurm cluster.

Options:
  --version   Show the version and exit.
  -h, --help  Show this message and exit.

Commands:
  batch      Write an sbatch script that runs the workflow inside its...
  cancel     Stop RUN, its tasks' processes and what it holds in Slurm...
  clean      Remove old run directories; shows what would go unless --yes...
  compose    Merge several workflow files into one (later files override...
  logs       Print a task's log (or the run's sflow.log) of RUN (a run...
  report     Write RUN's report: one HTML file (graph, timeline, tasks,...
  run        Run a workflow.
  runs       List past and running runs: id, workflow, state, start,...
  sample     List the workflows that ship with sflow, or copy one (NAME)...
  status     Each task of RUN (a run id, a run directory or 'latest'),...
  validate   Check workflow files without running anything: structure,...
  visualize  Print the task graph as Mermaid or Graphviz dot, or draw it...
"""


if __name__ == "__main__":
    import contextlib
    import io
    import os
    from pathlib import Path

    from sflow.cli import main

    os.environ["COLUMNS"] = "80"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"], prog_name="sflow")
    source = Path(__file__).read_text(encoding="utf-8")
    start = source.index('HELP = """') + len('HELP = """\\\n')
    end = source.index('"""', start)
    Path(__file__).write_text(source[:start] + out.getvalue() + source[end:], encoding="utf-8")
