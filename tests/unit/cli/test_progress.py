"""The live view: what runs now while the run goes on, how each task ended once nothing runs."""

from __future__ import annotations

import io

from rich.console import Console

from sflow.cli.progress import LiveProgress
from sflow.engine import Event, Outcome, State


def _text(progress: LiveProgress) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(progress._render())
    return out.getvalue()


def test_while_running_only_active_and_failed_tasks_are_rows() -> None:
    progress = LiveProgress(total=3, title="wf")
    progress.on_event(Event("a", State.RUNNING, 1, time=100.0))
    progress.on_event(Event("a", State.SUCCEEDED, 1, time=101.0))
    progress.on_event(Event("b", State.RUNNING, 1, time=101.0))
    text = _text(progress)
    assert "wf: 1/3 finished" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert any(" b " in row and "running" in row for row in rows)
    assert not any(" a " in row for row in rows)


def test_at_the_end_every_task_shows_how_it_ended_failures_first() -> None:
    progress = LiveProgress(total=3, title="wf")
    for name, start in (("ok", 100.0), ("bad", 100.0), ("late", 100.5)):
        progress.on_event(Event(name, State.RUNNING, 1, time=start))
    progress.on_event(Event("ok", State.SUCCEEDED, 1, time=102.0))
    progress.on_event(
        Event("bad", State.FAILED, 1, time=103.0, outcome=Outcome(ok=False, reason="exit code 3"))
    )
    progress.on_event(
        Event("late", State.CANCELLED, 1, time=103.5, outcome=Outcome(ok=False, reason="stopped"))
    )
    text = _text(progress)
    assert "wf: 3/3 finished" in text
    rows = [line for line in text.splitlines() if line.startswith("│") and "task" not in line]
    assert [row.split("│")[1].strip() for row in rows] == ["bad", "late", "ok"]
    assert "3.0s" in rows[0] and "exit code 3" in rows[0]
    assert "2.0s" in rows[2]
