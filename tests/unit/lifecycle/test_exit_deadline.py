"""Once a run is recorded its process ends within a bound, saying what it waited for.

Each case runs in a process of its own: without the bound, that process would never exit (the
subprocess timeout is a hang guard far above the bounds, not a measure of time).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

HANG_GUARD = 120.0

PRELUDE = """
import asyncio, sys, threading
from pathlib import Path
from sflow.lifecycle import exit_deadline
exit_deadline.NOTICE_AFTER, exit_deadline.EXIT_AFTER = 0.2, 1.0
"""


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "case.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    argv = [sys.executable, str(script), str(tmp_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=HANG_GUARD, cwd=tmp_path)


def test_a_task_that_ignores_its_cancel_does_not_hold_a_command_line_run(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        """
        from sflow.lifecycle.host import OwnLoop

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass

        async def main():
            asyncio.ensure_future(stubborn())
            return "recorded"

        OwnLoop(command_line=True, exit_code=lambda result: 7).run(main)
        """,
    )
    assert done.returncode == 7, done.stderr  # the run's own exit code
    assert "the run is recorded; its process still waits for: task " in done.stderr
    assert "stubborn()" in done.stderr
    assert "s after the run ended without what it waited for (in stderr)" in done.stderr


def test_a_thread_left_running_does_not_hold_the_exit_and_is_named_in_the_log(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        """
        from sflow.cli.run import exit_within

        def blocked_for_ever():
            threading.Event().wait()

        threading.Thread(target=blocked_for_ever, name="blocker").start()
        sys.exit(exit_within(Path(sys.argv[1]), 3))
        """,
    )
    assert done.returncode == 3, done.stderr
    assert "still waits for: thread blocker" in done.stderr
    log = (tmp_path / "sflow.log").read_text()
    assert "s after the run ended:\n" in log
    assert "thread blocker:" in log and "in blocked_for_ever" in log


def test_a_library_call_is_told_of_the_wait_but_never_exited(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        """
        from sflow.lifecycle.host import OwnLoop

        release = threading.Event()

        async def slow_to_cancel():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.to_thread(release.wait)  # what the program lets go of, later

        async def main():
            asyncio.ensure_future(slow_to_cancel())

        threading.Timer(2.0, release.set).start()  # after the bound: the process is the program's
        OwnLoop().run(main)
        print("returned")
        """,
    )
    assert done.returncode == 0 and done.stdout == "returned\n", done.stderr
    assert "still waits for: task " in done.stderr and "slow_to_cancel()" in done.stderr
    assert "what for is in stderr" in done.stderr


def test_a_signal_while_it_waits_says_what_for_and_exits_at_once(tmp_path: Path) -> None:
    script = tmp_path / "case.py"
    script.write_text(
        PRELUDE.replace("0.2, 1.0", "0.2, 3600.0")
        + textwrap.dedent(
            """
            from sflow.lifecycle.host import OwnLoop

            async def stubborn():
                while True:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        pass

            async def main():
                asyncio.ensure_future(stubborn())

            OwnLoop(command_line=True, exit_code=lambda result: 7).run(main)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        assert "still waits for: task " in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)  # a second Ctrl-C or SIGTERM: no use waiting any longer
        assert proc.wait(timeout=HANG_GUARD) == 7
        assert "without what it waited for" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
