"""A run on an event loop of its own: what `sflow run`, `sflow.run_yaml` and `with sflow.flow(...)` share.

- SIGINT and SIGTERM stop the runs on the loop gracefully (TERM, the grace, KILL), and a
  second signal skips what is left of the grace; before a run's engine has started, a
  signal cancels it instead.
- Child processes end through a pidfd (no watcher thread per child) where Python does not
  choose that itself (3.12 and later do).
- A library call handles only signals its program left at Python's default, and only in the
  main thread: a program with handlers of its own keeps them.
- Only a command-line run adopts orphans: it becomes the subreaper of what its tasks detach
  (`setsid`, a daemon), so the end of the run stops those too. A library call must not
  change its host process that way.
- A library call, once everything is stopped and recorded, ends as the process would have
  without sflow: a SIGINT raises `KeyboardInterrupt`, a SIGTERM `SystemExit(143)`. The
  command line reports the interrupted run and exits with its own code instead.
- Once the run is recorded, what the loop's shutdown still waits for is said and bounded
  (`sflow.lifecycle.exit_deadline`); a command-line run exits with its code at the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from sflow.lifecycle.exit_deadline import ExitDeadline
from sflow.lifecycle.scope import active_scopes, run_logs
from sflow.proc.orphans import adopt_orphans as become_subreaper

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OwnLoop:
    """Runs a coroutine on a new event loop of its own; `stop_signal` is the signal that stopped it.

    A signal is counted the moment it arrives, by a handler installed before the loop starts and
    kept until it has closed, and acted on by the loop (which the signal wakes): so one that comes
    before the loop runs, or as it ends, is never lost, and the run still ends as it says.
    """

    def __init__(self, *, command_line: bool = False, exit_code: Callable[[Any], int] | None = None) -> None:
        self.command_line = command_line
        self.stop_signal: signal.Signals | None = None
        self._exit_code = exit_code  # the process's exit code for main's result (command line)
        self._hits = 0  # signals received
        self._acted = 0  # signals the loop has acted on
        self._deadline: ExitDeadline | None = None  # armed once the run is recorded

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`main()` to completion; see the module doc for what signals do."""
        if self.command_line:
            become_subreaper()  # what tasks detach is re-parented to us and stopped at the end
        # decided, and taken, before asyncio.run would put its own SIGINT handler in place
        handled = [sig for sig in STOP_SIGNALS if self.command_line or _ours_to_handle(sig)]
        previous = {sig: signal.getsignal(sig) for sig in handled}

        deadline = self._deadline = ExitDeadline(hard_exit=self.command_line)

        async def body() -> T:
            _use_pidfd_watcher()
            task = asyncio.ensure_future(main())
            try:
                with self._stop_on_signals(task, handled):
                    return await task
            finally:  # the run is recorded: the shutdown of the loop that follows is bounded
                loop = asyncio.get_running_loop()
                deadline.arm(loop, run_logs(loop), self._code(task))

        try:
            for sig in handled:
                signal.signal(sig, self._received)
            result = asyncio.run(body())
        except BaseException as exc:
            if self.stop_signal is not None and not self.command_line:
                raise _as_signal_exit(self.stop_signal) from exc
            raise
        finally:
            deadline.disarm()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.stop_signal is not None and not self.command_line:
            raise _as_signal_exit(self.stop_signal)
        return result

    def _code(self, main: asyncio.Future[Any]) -> int:
        """The exit code a command-line run ends with, should its shutdown not end by itself."""
        if main.done() and not main.cancelled() and main.exception() is None and self._exit_code:
            return self._exit_code(main.result())
        return 128 + int(self.stop_signal) if self.stop_signal else 1

    def _received(self, signum: int, frame: Any) -> None:
        """The Python-level handler: count the signal at once (the loop acts on it when it wakes)."""
        self._hits += 1
        self.stop_signal = self.stop_signal or signal.Signals(signum)
        if self._deadline is not None and self._deadline.armed:  # the run is over: say what holds it
            self._deadline.hurry()

    @contextlib.contextmanager
    def _stop_on_signals(self, main: asyncio.Future[Any], handled: list[signal.Signals]) -> Iterator[None]:
        loop = asyncio.get_running_loop()

        def act() -> None:
            """Stop the runs for the signals received since the last call (a second one: no grace)."""
            if self._acted == self._hits or self.stop_signal is None:
                return
            self._acted = self._hits
            reason = f"interrupted ({self.stop_signal.name})"
            stopping = [
                s.request_stop(reason, interrupted=True, force=self._hits > 1) for s in active_scopes(loop)
            ]
            if not any(stopping):
                main.cancel()

        for sig in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, act)  # a signal wakes the loop, which calls `act`
            signal.signal(sig, self._received)  # ... and is counted at once, even if the loop never wakes
        act()  # what came before the loop ran
        try:
            yield
        finally:
            for sig in handled:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
                signal.signal(sig, self._received)  # until the loop has closed


def _ours_to_handle(sig: signal.Signals) -> bool:
    """In a library call: only in the main thread, and only a signal the program left at Python's default."""
    if threading.current_thread() is not threading.main_thread():
        return False
    default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
    return signal.getsignal(sig) is default


def _as_signal_exit(sig: signal.Signals) -> BaseException:
    """What the process would have ended with: KeyboardInterrupt for SIGINT, else status 128 + N."""
    if sig == signal.SIGINT:
        return KeyboardInterrupt()
    return SystemExit(128 + int(sig))


def _use_pidfd_watcher() -> None:
    if sys.version_info >= (3, 12) or not sys.platform.startswith("linux"):
        return  # 3.12+ picks the best watcher itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(asyncio.get_running_loop())
            asyncio.set_child_watcher(watcher)
        except (OSError, AttributeError):
            pass
