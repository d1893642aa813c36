"""Once a run is recorded, its process ends within a bound, and says what it still waits for.

Everything a run holds is stopped and released before summary.json is written; what comes after
(asyncio cancelling the loop's last tasks and joining its threads, the closing words, the
interpreter joining threads at exit) takes a moment. Should something hold the process there
(a task that does not end when cancelled, a thread that does not return), sflow says what on
stderr after `notice_after` seconds; after `exit_after` (at once on a signal meanwhile) it writes
every pending task and every thread's stack to sflow.log, and a command-line run exits with the
run's exit code. A library call only reports: the process is its program's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

NOTICE_AFTER = 5.0  # seconds after the run's end before a wait is said on stderr
EXIT_AFTER = 30.0  # seconds after the run's end before a command-line run exits regardless


class ExitDeadline:
    """A watchdog armed when the run is recorded; `disarm` once the process may end as it likes."""

    def __init__(self, *, hard_exit: bool) -> None:
        self.hard_exit = hard_exit
        self.notice_after = NOTICE_AFTER
        self.exit_after = EXIT_AFTER
        self._over = False
        self._wake = threading.Event()  # disarmed, or hurried by a signal
        self._thread: threading.Thread | None = None

    def arm(self, loop: asyncio.AbstractEventLoop | None, logs: Sequence[Path], code: int) -> None:
        """Start counting; `loop` is the one whose tasks may hold the process (None once it is
        closed), `logs` get the report, `code` is the exit code of a hard exit."""
        if self._thread is None:
            args = (loop, list(logs), code)
            self._thread = threading.Thread(
                target=self._watch, args=args, name="sflow-exit-deadline", daemon=True
            )
            self._thread.start()

    @property
    def armed(self) -> bool:
        return self._thread is not None and not self._over

    def disarm(self) -> None:
        self._over = True
        self._wake.set()

    def hurry(self) -> None:
        """A signal while the process waits: say what for, and (a command-line run) exit, now."""
        self._wake.set()

    def _watch(self, loop: asyncio.AbstractEventLoop | None, logs: list[Path], code: int) -> None:
        started = time.monotonic()
        self._wake.wait(self.notice_after)
        if self._over:
            return
        waits = "; ".join(pending(loop)) or "its exit"
        _say(f"sflow: the run is recorded; its process still waits for: {waits}")
        self._wake.wait(max(0.0, self.exit_after - self.notice_after))
        if self._over:
            return
        waited = f"{time.monotonic() - started:.0f}s"
        where = _append(logs, f"still waiting {waited} after the run ended:\n{describe(loop)}")
        if not self.hard_exit:
            _say(f"sflow: still waiting {waited} after the run ended; what for is in {where}")
            return
        _say(f"sflow: exiting {waited} after the run ended without what it waited for (in {where})")
        os._exit(code)


def pending(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """One line for each task still pending on `loop` and each thread, other than ours, still running."""
    lines = [f"task {_task_line(task)}" for task in _tasks(loop)]
    ours = {threading.main_thread(), threading.current_thread()}
    lines += [f"thread {t.name}" for t in threading.enumerate() if t not in ours and not t.daemon]
    return lines


def describe(loop: asyncio.AbstractEventLoop | None) -> str:
    """Every pending task with what it awaits, then every thread's stack (the main thread's shows
    where the process is held)."""
    parts = []
    for task in _tasks(loop):
        chain = "".join(
            f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}\n" for f in _awaits(task)
        )
        parts.append(f"task {task.get_name()}, awaiting:\n{chain}")
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident != threading.get_ident():
            parts.append(f"thread {names.get(ident, ident)}:\n{''.join(traceback.format_stack(frame))}")
    return "\n".join(parts)


def _awaits(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames of the coroutines a task is suspended in, outermost first."""
    frames: list[FrameType] = []
    coro: Any = task.get_coro()
    while coro is not None and len(frames) < 50:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def _tasks(loop: asyncio.AbstractEventLoop | None) -> list[asyncio.Task[object]]:
    """The loop's pending tasks, read from another thread (a set that may change meanwhile)."""
    if loop is None or loop.is_closed():
        return []
    for _ in range(5):
        try:
            return [task for task in asyncio.all_tasks(loop) if not task.done()]
        except RuntimeError:  # changed while read
            time.sleep(0.01)
    return []


def _task_line(task: asyncio.Task[object]) -> str:
    """The task and the innermost place it waits at."""
    frames = _awaits(task)
    where = f" at {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else ""
    outer = frames[0].f_code.co_name if frames else repr(task.get_coro())
    return f"{task.get_name()} {outer}(){where}"


def _append(logs: list[Path], text: str) -> str:
    """Append `text` to each log; the ones written, or 'stderr' when none could be."""
    written = []
    for log in logs:
        try:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            written.append(str(log))
        except OSError:
            pass
    if not written:
        _say(text)
    return ", ".join(written) or "stderr"


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed or gone
        pass
