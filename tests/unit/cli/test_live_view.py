"""The live view in a fixed 24-row terminal, from scripted events: what waits and why, the
attempt and last log line of what runs, fixed columns, summing up instead of cutting, stopping."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from sflow.cli.progress import LiveProgress, TaskPlan
from sflow.engine import Event, Outcome, State

WIDTH, HEIGHT = 100, 24


def view(plan: dict[str, TaskPlan], total: int | None = None) -> LiveProgress:
    console = Console(width=WIDTH, height=HEIGHT, record=True, file=io.StringIO(), color_system=None)
    return LiveProgress(total=total or len(plan), title="wf", plan=plan, console=console)


def screen(progress: LiveProgress) -> list[str]:
    progress.console.print(progress._render())
    return progress.console.export_text(clear=True).splitlines()


def running(name: str, attempt: int = 1, log: Path | None = None, t: float = 100.0) -> Event:
    return Event(name, State.RUNNING, attempt, time=t, attempt_obj=SimpleNamespace(log_path=log, info={}))


def row(lines: list[str], task: str) -> list[str]:
    found = [line for line in lines if line.startswith("│") and line.split("│")[1].strip() == task]
    assert found, f"no row for {task}:\n" + "\n".join(lines)
    return [cell.strip() for cell in found[0].split("│")[1:-1]]


def test_waiting_tasks_are_counted_with_why_they_wait():
    plan = {
        "db": TaskPlan(service=True),
        "api": TaskPlan(deps=("db",)),
        "prep": TaskPlan(),
        "report": TaskPlan(deps=("prep",)),
        "more": TaskPlan(deps=("prep",)),
        "train": TaskPlan(gpus=True),
        "small": TaskPlan(),
    }
    progress = view(plan)
    progress.on_event(running("db"))
    progress.on_event(running("prep"))
    lines = screen(progress)
    assert lines[0].startswith("wf: 0/7 finished, 5 waiting")
    assert (
        "waiting: 5 (2 on dependencies, 1 on service db, 1 for GPUs, 1 for a slot (max_concurrent))" in lines
    )
    progress.on_event(Event("db", State.READY, 1, time=101.0))
    progress.on_event(Event("prep", State.SUCCEEDED, 1, time=102.0))
    lines = screen(progress)
    assert "waiting: 5 (4 for a slot (max_concurrent), 1 for GPUs)" in lines  # db is ready, prep done


def test_a_running_task_shows_its_attempt_and_the_last_line_of_its_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("epoch 1 loss=0.9\nepoch 2 [b]not markup[/b] \x1b[31mred\x1b[0m\n\n")
    progress = view({"train": TaskPlan()})
    progress.on_event(running("train", attempt=2, log=log))
    cells = row(screen(progress), "train")
    assert cells[1:3] == ["running", "2"]
    assert cells[4] == "epoch 2 [b]not markup[/b] red"
    with log.open("a") as fh:
        fh.write("epoch 3 loss=0.3\n")
    assert row(screen(progress), "train")[4] == "epoch 3 loss=0.3"


def test_columns_keep_their_width_whatever_the_content(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("short\n")
    progress = view({"a": TaskPlan(), "b": TaskPlan()})
    progress.on_event(running("a", log=log))
    first = screen(progress)
    log.write_text("x" * 500 + "\n")
    progress.on_event(running("a-task-with-a-very-long-name-that-does-not-fit", log=log))
    second = screen(progress)
    header = next(line for line in first if "detail" in line)
    assert header == next(line for line in second if "detail" in line)
    table = [line for line in first + second if line[:1] in "┏┃┡│└"]
    assert {len(line) for line in table} == {WIDTH}
    assert row(second, "a-task-with-a-very-long…")[4].endswith("…")


def test_a_long_run_is_summed_up_to_fit_24_rows_with_its_header():
    plan = {f"t{i:03d}": TaskPlan() for i in range(300)}
    progress = view(plan)
    for i in range(60):
        progress.on_event(running(f"t{i:03d}"))
    for i in range(60, 63):
        progress.on_event(running(f"t{i:03d}"))
        progress.on_event(
            Event(f"t{i:03d}", State.FAILED, 1, time=101.0, outcome=Outcome(False, "exit code 1"))
        )
    lines = screen(progress)
    assert len(lines) <= HEIGHT
    assert lines[0].startswith("wf: 3/300 finished, 237 waiting")
    assert any("task" in line and "detail" in line for line in lines[:4])
    more = [line for line in lines if "... " in line and " more" in line]
    assert len(more) == 1 and "... 47 more" in more[0] and "44 running, 3 failed" in more[0]
    assert lines[-2] == "waiting: 237 (237 for a slot (max_concurrent))"


def test_a_stopping_task_shows_stopping_during_its_grace():
    progress = view({"server": TaskPlan(), "client": TaskPlan()})
    progress.on_event(running("server"))
    progress.on_event(running("client"))
    progress.on_event(Event("client", State.FAILED, 1, time=101.0, outcome=Outcome(False, "exit code 2")))
    progress.on_event(Event("server", State.STOPPING, 1, time=101.0, message="grace 10s"))
    lines = screen(progress)
    assert row(lines, "server")[1] == "stopping" and row(lines, "server")[4] == "stopping (grace 10s)"
    progress.on_event(Event("server", State.CANCELLED, 1, time=103.0, outcome=Outcome(False, "stopped")))
    lines = screen(progress)
    assert [row(lines, n)[1] for n in ("client", "server")] == ["failed", "cancelled"]


def test_the_plain_view_says_a_task_is_stopping_and_its_grace():
    from sflow.cli.progress import PlainProgress

    out = io.StringIO()
    plain = PlainProgress(out)
    plain.on_event(Event("server", State.STOPPING, 1, time=plain.began + 2, message="grace 10s"))
    assert out.getvalue().endswith("server: stopping (grace 10s)\n")


def test_a_narrow_terminal_shortens_names_and_detail_never_state_attempt_or_time(tmp_path):
    console = Console(width=60, height=HEIGHT, record=True, file=io.StringIO(), color_system=None)
    progress = LiveProgress(total=2, title="wf", plan={"measure_128_4": TaskPlan()}, console=console)
    progress.on_event(running("measure_128_4", t=100.0))
    progress.on_event(
        Event("measure_128_4", State.SUCCEEDED, 1, time=112.5, outcome=Outcome(True, "exit code 0"))
    )
    lines = screen(progress)
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert {len(line) for line in table} == {60}
    assert [cell.strip() for cell in table[1].split("┃")[1:-1]] == ["task", "state", "try", "for", "detail"]
    assert row(lines, "measure_128…") == ["measure_128…", "succeeded", "1", "12.5s", "exit code 0"]
