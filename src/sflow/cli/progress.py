"""Progress for people: a live table on a terminal, one plain line per state change otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

import msgspec

from sflow.cli.streams import to_devnull
from sflow.engine import Event, State
from sflow.record.status import waiting
from sflow.record.tail import printable, read_end

_STYLE = {
    State.RUNNING: "cyan",
    State.READY: "green",
    State.RETRYING: "yellow",
    State.SUCCEEDED: "green",
    State.FAILED: "bold red",
    State.CANCELLED: "magenta",
    State.SKIPPED: "dim",
    State.STOPPING: "magenta",
}


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
        if event.message:  # `retry in 2s`; a stopping task's grace in parentheses
            text += f" ({event.message})" if event.state is State.STOPPING else f" {event.message}"
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            to_devnull(self.stream)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class TaskPlan(msgspec.Struct, frozen=True):
    """What the live view knows of a task before it starts: what it waits for."""

    deps: tuple[str, ...] = ()
    service: bool = False  # its dependents start once it is ready
    gpus: bool = False  # it asks for GPUs


class LiveProgress:
    """A live table of the tasks that matter now and a line on those that wait, sized to fit.

    While the run goes on: running, ready, retrying and stopping tasks with their attempt and the
    last line of their log, then failures; below, how many tasks wait and why (dependencies, a
    service not ready yet, GPUs, a slot under max_concurrent). Once nothing runs any more it shows how each task
    ended, failures first. Columns have fixed widths (a narrow terminal shortens the task names and
    the detail, never the state, attempt or time), and when the rows do not fit the terminal
    the last ones are summed up in one row: the header is never cut.
    """

    # lines around the rows: title, top border, header, its rule, bottom border, waiting, counts
    FRAME_LINES = 7
    WIDTHS = {"task": 24, "state": 9, "try": 3, "for": 7}
    TASK_MIN = 12
    DETAIL_MIN = 20  # on a terminal wide enough for full task names
    DETAIL_MIN_NARROW = 8

    def __init__(
        self,
        total: int,
        title: str,
        plan: Mapping[str, TaskPlan] | None = None,
        console: Any = None,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.total = total
        self.title = title
        self.plan = dict(plan or {})
        self.began = time.time()
        self.states: dict[str, State] = {}
        self.since: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.reasons: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.logs: dict[str, str] = {}
        self.console = console or Console()
        self.live = Live(
            console=self.console, refresh_per_second=8, transient=False, get_renderable=self._render
        )

    def on_event(self, event: Event) -> None:
        if event.state is not State.STOPPING:  # stopping keeps the time its state began
            self.since[event.unit] = event.time
        self.states[event.unit] = event.state
        self.attempts[event.unit] = max(self.attempts.get(event.unit, 0), event.attempt)
        if event.state is State.RUNNING:
            self.started.setdefault(event.unit, event.time)
            log = event.attempt_obj.log_path if event.attempt_obj is not None else None
            if log is not None:
                self.logs[event.unit] = str(log)
        if event.outcome is not None and event.outcome.reason:
            self.reasons[event.unit] = event.outcome.reason
        if event.state is State.RETRYING and event.message:
            self.reasons[event.unit] = f"{self.reasons.get(event.unit, '')}; {event.message}".lstrip("; ")
        if event.state is State.STOPPING:
            self.reasons[event.unit] = f"stopping ({event.message})" if event.message else "stopping"

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    # -- what it shows ---------------------------------------------------------------------------

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        counts: dict[State, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        waiting = self._waiting()
        done = sum(n for st, n in counts.items() if st.done)
        head = f"{self.title}: {done}/{self.total} finished, {len(waiting)} waiting, elapsed {now - self.began:.1f}s"
        table = Table(title=head, title_justify="left", expand=False)
        widths = self._widths()
        for name, width in widths.items():
            right = name in ("try", "for")
            table.add_column(
                name, width=width, no_wrap=True, overflow="ellipsis", justify="right" if right else "left"
            )
        shown = self._rows()
        room = max(1, self.console.size.height - self.FRAME_LINES)
        cut = shown[room - 1 :] if len(shown) > room else []
        for name in shown[: len(shown) - len(cut)]:
            table.add_row(*self._cells(name, now))
        if cut:
            table.add_row(f"... {len(cut)} more", "", "", "", _tally(self.states[n] for n in cut))
        summary = "  ".join(
            f"{st.value}: {n}" for st, n in sorted(counts.items(), key=lambda kv: kv[0].value)
        )
        return Group(table, Text(_waiting_line(waiting), no_wrap=True, overflow="ellipsis"), Text(summary))

    def _widths(self) -> dict[str, int]:
        """Every column's width on this terminal, the detail taking what is left.

        A narrow terminal takes room from the task names first (down to `TASK_MIN`), then from
        the detail: state, attempt and time keep their widths, so they are never cut."""
        borders = 3 * (len(self.WIDTHS) + 1) + 1
        room = self.console.size.width - borders - sum(self.WIDTHS.values()) + self.WIDTHS["task"]
        task = max(self.TASK_MIN, min(self.WIDTHS["task"], room - self.DETAIL_MIN))
        return {**self.WIDTHS, "task": task, "detail": max(self.DETAIL_MIN_NARROW, room - task)}

    def _rows(self) -> list[str]:
        """Tasks to show, in this order: the live ones and failures; at the end, every task."""
        live = (State.RUNNING, State.READY, State.RETRYING, State.STOPPING)
        shown = [n for n, st in self.states.items() if st in live]
        if shown:
            return shown + [n for n, st in self.states.items() if st is State.FAILED]
        for wanted in (State.FAILED, State.CANCELLED, State.SUCCEEDED, State.SKIPPED):
            shown += [n for n, st in self.states.items() if st is wanted]
        return shown

    def _cells(self, name: str, now: float) -> tuple[str, ...]:
        from rich.markup import escape

        state = self.states[name]
        if state.done:
            took = self.since[name] - self.started[name] if name in self.started else 0.0
        else:
            took = now - self.since.get(name, now)
        if state in (State.RUNNING, State.READY):
            detail = self._last_line(name)
        else:
            detail = self.reasons.get(name, "")
        label = f"[{_STYLE.get(state, '')}]{state.value}[/]"
        return (name, label, str(self.attempts.get(name) or "-"), f"{took:.1f}s", escape(detail))

    def _last_line(self, name: str) -> str:
        """The last line the task's log holds now, made printable."""
        text = read_end(self.logs.get(name), 4096)
        lines = [line for line in (text or "").splitlines() if line.strip()]
        return printable(lines[-1], limit=300) if lines else ""

    def _waiting(self) -> dict[str, str]:
        """Each task that has not started, and why it waits."""
        out: dict[str, str] = {}
        for name, plan in self.plan.items():
            if self.states.get(name, State.PENDING) is not State.PENDING:
                continue
            out[name] = waiting(plan.deps, self._state_of, self._is_service, plan.gpus).reason
        return out

    def _state_of(self, name: str) -> str:
        return self.states.get(name, State.PENDING).value

    def _is_service(self, name: str) -> bool:
        return self.plan.get(name, TaskPlan()).service


def _waiting_line(waiting: Mapping[str, str]) -> str:
    """`waiting: 12 (8 on dependencies, 3 on service db, 1 for GPUs)`."""
    if not waiting:
        return "waiting: none"
    why: dict[str, int] = {}
    for reason in waiting.values():
        why[reason] = why.get(reason, 0) + 1
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(why.items(), key=lambda kv: -kv[1]))
    return f"waiting: {len(waiting)} ({parts})"


def _tally(states: Iterable[State]) -> str:
    counts: dict[str, int] = {}
    for state in states:
        counts[state.value] = counts.get(state.value, 0) + 1
    return ", ".join(f"{n} {st}" for st, n in counts.items())
