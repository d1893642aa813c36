"""`sflow --help` is answered without click from a copy of its text; the copy must be what click
prints, and a narrower terminal gets click's own wrapping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sflow.console import HELP

RUN = (  # the modules loaded, said by an exit handler: the process may end without returning here
    "import atexit, sys; sys.argv = ['sflow', *sys.argv[1:]]; from sflow.console import run\n"
    "atexit.register(lambda: print(' '.join(sys.modules), file=sys.stderr))\nrun()"
)


def sflow(*args: str, columns: str = "") -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(done.stderr.split())


def test_the_copy_is_what_click_prints() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    code = "from sflow.cli import main; main(['--help'], prog_name='sflow')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0
    assert done.stdout == HELP, "write it again: python -m sflow.console"


def test_help_loads_no_click() -> None:
    for flag in ("--help", "-h"):
        out, loaded = sflow(flag)
        assert out == HELP
        assert "click" not in loaded


def test_a_narrow_terminal_gets_clicks_own_wrapping() -> None:
    out, loaded = sflow("--help", columns="60")
    assert out != HELP and "Usage: sflow [OPTIONS] COMMAND [ARGS]..." in out
    assert "click" in loaded
    wide, _ = sflow("--help", columns="200")
    assert wide == HELP  # click wraps at 78 from 80 columns on


def test_other_commands_go_to_click() -> None:
    out, loaded = sflow("run", "--help")
    assert "--dry-run" in out and "click" in loaded


def _program(before: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sflow ARGS` as the console script runs it, after `before` (Python) in the same process."""
    code = f"import sys; sys.argv = ['sflow', *sys.argv[1:]]\n{before}\nfrom sflow.console import run\nrun()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, env=env
    )


def test_a_command_ends_with_its_exit_code_its_words_and_the_exit_handlers_run() -> None:
    done = _program("import atexit; atexit.register(print, 'handler ran')", "validate", "/nonexistent.yaml")
    assert done.returncode == 2
    assert "file not found" in done.stderr
    assert done.stdout == "handler ran\n"


def test_a_command_ends_without_the_interpreters_teardown() -> None:
    """What only the teardown would do (free a module's objects) is skipped: it takes time."""
    before = "class Torn:\n    def __del__(self): print('torn down')\nleft = Torn()"
    done = _program(before, "sample")
    assert done.returncode == 0 and done.stdout and "torn down" not in done.stdout


def test_a_thread_still_running_at_the_end_is_waited_for(tmp_path: Path) -> None:
    """A thread that is not a daemon: the interpreter's own exit waits for it, as ever."""
    mark = tmp_path / "finished"
    before = (
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.3), open({str(mark)!r}, 'w').close())).start()"
    )
    done = _program(before, "validate", "/nonexistent.yaml")
    assert done.returncode == 2 and mark.exists()


def test_a_one_task_run_starts_without_scanning_its_new_objects_for_garbage(tmp_path: Path) -> None:
    """Each collection during the start of a command only rescans what it just made."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        'version: "0.1"\nworkflow:\n  name: one\n  tasks:\n    - name: t\n      script: ["true"]\n'
    )
    count = "import atexit, gc; done = []; gc.callbacks.append(lambda phase, info: done.append(phase))\n"
    count += "atexit.register(lambda: print('collections', done.count('stop'), file=sys.stderr))"
    args = ("run", "-q", "-f", str(workflow), "--output-dir", str(tmp_path / "runs"))
    # As an installed sflow starts: its modules' bytecode is cached (compiling them would make
    # objects of its own). The cache goes to a folder of the test's, the checkout is left as it is.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "bytecode")
    assert _program("", *args, env=env).returncode == 0
    done = _program(count, *args, env=env)
    assert done.returncode == 0, done.stderr
    assert "collections 0" in done.stderr
