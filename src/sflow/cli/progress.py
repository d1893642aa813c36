"""Progress for people: a live table on a terminal, one plain line per state change otherwise."""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from sflow.engine import Event, State

_STYLE = {
    State.RUNNING: "cyan",
    State.READY: "green",
    State.RETRYING: "yellow",
    State.SUCCEEDED: "green",
    State.FAILED: "bold red",
    State.CANCELLED: "magenta",
    State.SKIPPED: "dim",
}


def to_devnull(stream: IO[str]) -> None:
    """Send what is still written to `stream` (and its last flush at exit) to /dev/null.

    For a stream whose reader went away (`sflow run | head -1`): nothing more can reach it, and
    each write would fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a file (a test's StringIO), or already closed
        pass


class PlainProgress:
    """One line per state change; suited to logs, pipes and CI.

    When the reader of the stream goes away (`| head -1`), the lines stop and the run goes on:
    a progress view closing is no reason to stop the work; the run directory records it all.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.began = time.time()
        self.closed = False

    def on_event(self, event: Event) -> None:
        if self.closed:
            return
        elapsed = event.time - self.began
        text = f"[{elapsed:8.2f}s] {event.unit}: {event.state.value}"
        if event.state is State.RUNNING and event.attempt > 1:
            text += f" (attempt {event.attempt})"
        kept = event.state is State.SUCCEEDED and event.attempt == 0  # made by an earlier run
        if (
            event.outcome is not None
            and event.outcome.reason
            and (event.state is not State.SUCCEEDED or kept)
        ):
            text += f" ({event.outcome.reason})"
        if event.message:
            text += f" {event.message}"
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            to_devnull(self.stream)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class LiveProgress:
    """A live table of the tasks that matter now (running, ready, failed) and counts of the rest.

    Once nothing runs any more (the end, or a stop), it shows how each task ended instead:
    failed and cancelled first, with how long each ran.
    """

    MAX_ROWS = 20

    def __init__(self, total: int, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.total = total
        self.title = title
        self.began = time.time()
        self.states: dict[str, State] = {}
        self.since: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.reasons: dict[str, str] = {}
        self.console = Console()
        self.live = Live(
            console=self.console, refresh_per_second=8, transient=False, get_renderable=self._render
        )

    def on_event(self, event: Event) -> None:
        self.states[event.unit] = event.state
        self.since[event.unit] = event.time
        if event.state is State.RUNNING:
            self.started.setdefault(event.unit, event.time)
        if event.outcome is not None and event.outcome.reason:
            self.reasons[event.unit] = event.outcome.reason

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def _render(self) -> Any:
        from rich.table import Table

        counts: dict[State, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        done = sum(n for s, n in counts.items() if s.done)
        head = f"{self.title}: {done}/{self.total} finished, elapsed {time.time() - self.began:.1f}s"
        table = Table(title=head, title_justify="left", expand=False)
        table.add_column("task")
        table.add_column("state")
        table.add_column("for", justify="right")
        table.add_column("detail")
        now = time.time()
        active = (State.RUNNING, State.READY, State.RETRYING)
        shown = [n for n, s in self.states.items() if s in active]
        if shown:
            shown += [n for n, s in self.states.items() if s is State.FAILED]
        else:  # nothing runs: how each task ended, the ones to look at first
            for wanted in (State.FAILED, State.CANCELLED, State.SUCCEEDED, State.SKIPPED):
                shown += [n for n, s in self.states.items() if s is wanted]
        for name in shown[: self.MAX_ROWS]:
            state = self.states[name]
            if state.done:
                took = self.since[name] - self.started[name] if name in self.started else 0.0
            else:
                took = now - self.since[name]
            table.add_row(
                name,
                f"[{_STYLE.get(state, '')}]{state.value}[/]",
                f"{took:.1f}s",
                self.reasons.get(name, "") if state is not State.RUNNING else "",
            )
        if len(shown) > self.MAX_ROWS:
            table.add_row(f"... {len(shown) - self.MAX_ROWS} more", "", "", "")
        summary = "  ".join(f"{s.value}: {n}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value))
        table.caption = summary
        return table
