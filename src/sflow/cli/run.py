"""What `sflow run` does around the library: progress, failure report, dry-run plan, exit code."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from sflow.engine import RunResult, State
from sflow.lifecycle.settings import RunSettings
from sflow.record.tail import last_lines, printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sflow.workflow.plan import TaskInstance
    from sflow.workflow.run_plan import RunPlan

TAIL_LINES = 20


def run_workflow(
    spec: Any,
    settings: RunSettings,
    progress: str = "auto",
    run_plan: RunPlan | None = None,
    max_concurrent: int | None = None,
    with_report: bool = False,
) -> int:
    """Run to completion and return the process exit code.

    `progress` is `auto` (live view on a terminal), `live`, `plain` or `none`; `run_plan` says
    which tasks run and what a resumed run keeps (by default: every task, nothing kept);
    `max_concurrent` bounds the tasks running at once on each backend, over the backends' own limits;
    `with_report` writes `<run-dir>/report.html` when the run ends, however it ends.
    """
    from sflow.lifecycle.host import OwnLoop
    from sflow.workflow.run import WorkflowRun

    run = WorkflowRun(spec, settings, run_plan=run_plan, max_concurrent=max_concurrent)
    view = _progress(progress, spec.workflow.name, run.instances)
    if view:
        run.listeners.append(view.on_event)
    _say(f"sflow: run {run.record.run_id} -> {run.record.run_dir}")
    if run.run_plan.earlier is not None:
        _say(f"sflow: {run.run_plan.resume_summary()}")
    if view:
        view.start()
    loop = OwnLoop(command_line=True, exit_code=lambda result: exit_code(result, loop.stop_signal))
    try:
        result = loop.run(run.run)
    except asyncio.CancelledError:
        _say("sflow: interrupted before the workflow started")
        return exit_within(run.record.run_dir, interrupted_exit_code(loop.stop_signal))
    finally:
        if view:
            view.stop()
        if with_report:
            _write_report(run.record.run_dir)
    try:
        report(result, run.record.task_info, run.record.run_dir, time.time() - run.record.started)
    except BrokenPipeError:  # `2>&1 | head`: the exit code still tells
        from sflow.cli.streams import to_devnull

        to_devnull(sys.stderr)
    return exit_within(run.record.run_dir, exit_code(result, loop.stop_signal))


def exit_code(result: RunResult, stop_signal: int | None) -> int:
    """0 when every task succeeded, 1 when the workflow failed, 128 + the signal when interrupted."""
    if result.interrupted:
        return interrupted_exit_code(stop_signal)
    return EXIT_OK if result.ok else EXIT_FAILED


def exit_within(run_dir: Path, code: int) -> int:
    """`code`, the process's exit code from now on: all is said, the process ends within a bound
    (threads still running at exit are named in sflow.log, and do not hold it)."""
    from sflow.lifecycle.exit_deadline import ExitDeadline

    ExitDeadline(hard_exit=True).arm(None, [run_dir / "sflow.log"], code)
    return code


def _write_report(run_dir: Path) -> None:
    """The run's HTML report; a report that cannot be written is said, and the run's outcome stands."""
    from sflow.record.report import write_report

    try:
        _say(f"sflow: report {write_report(run_dir)}")
    except OSError as exc:
        _say(f"sflow: warning: could not write the report in {run_dir}: {exc}")


def _say(text: str) -> None:
    """A line on stderr; when nobody reads stderr any more (`2>&1 | head`), the run goes on."""
    try:
        print(text, file=sys.stderr)
    except BrokenPipeError:
        from sflow.cli.streams import to_devnull

        to_devnull(sys.stderr)


def interrupted_exit_code(signum: int | None) -> int:
    """128 + the signal's number, the shells' convention: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + signum if signum else EXIT_INTERRUPTED


def _progress(mode: str, title: str, instances: Sequence[TaskInstance]) -> Any:
    if mode == "none":
        return None
    from sflow.cli.progress import LiveProgress, PlainProgress, TaskPlan
    from sflow.workflow.run_plan import is_service

    if mode == "auto":
        mode = "live" if sys.stdout.isatty() else "plain"
    if mode == "live":
        plan = {
            i.name: TaskPlan(
                deps=tuple(i.deps),
                service=is_service(i),
                gpus=i.request.asks_gpus,
            )
            for i in instances
        }
        return LiveProgress(total=len(instances), title=title, plan=plan)
    return PlainProgress()


def report(result: RunResult, task_info: dict[str, dict[str, Any]], run_dir: Path, took: float) -> None:
    """The closing words: success in one line, or each failed task with its log tail.

    `took` is the whole run's time, allocation included (the engine's own clock starts later:
    a run whose allocation Slurm refused never started it)."""
    out = sys.stderr
    counts: dict[str, int] = {}
    for r in result.units.values():
        counts[r.state.value] = counts.get(r.state.value, 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    if result.ok:
        print(f"sflow: workflow succeeded in {took:.2f}s ({tally}); run dir {run_dir}", file=out)
        return
    for name in result.failed():
        _report_failed(name, result, task_info.get(name, {}), out)
    if result.stop_reason and not result.interrupted:  # a workflow timeout: what it cut short
        for name in result.order:
            unit = result.units[name]
            if unit.state is State.CANCELLED and unit.attempts:
                _report_failed(name, result, task_info.get(name, {}), out, stopped_by=result.stop_reason)
    verdict = "interrupted" if result.interrupted else "failed"
    why = f": {result.stop_reason}" if result.stop_reason and not result.interrupted else ""
    print(f"sflow: workflow {verdict} after {took:.2f}s{why} ({tally}); run dir {run_dir}", file=out)


def _report_failed(
    name: str, result: RunResult, info: dict[str, Any], out: Any, stopped_by: str | None = None
) -> None:
    r = result.units[name]
    reason = printable(r.outcome.reason) if r.outcome else "failed"
    if stopped_by:
        print(f"\nsflow: task '{name}' was stopped: {stopped_by} ({reason}, attempt {r.attempts})", file=out)
    else:
        print(f"\nsflow: task '{name}' failed: {reason} (attempt {r.attempts})", file=out)
    for key, label in (
        ("slurm_job_id", "Slurm job"),
        ("slurm_step_id", "Slurm step"),
        ("slurm_state", "Slurm state"),
    ):
        if info.get(key):
            print(f"  {label}: {info[key]}", file=out)
    log = info.get("log")
    if log:
        print(f"  log: {log}", file=out)
        lines = last_lines(log, TAIL_LINES)
        if lines:
            print(f"  last {len(lines)} line(s):", file=out)
            for line in lines:  # a task's own words: no escape sequence reaches the terminal
                print(f"    | {printable(line)}", file=out)


def dry_run_plan(spec: Any, settings: RunSettings, run_plan: RunPlan | None = None) -> list[str]:
    """The resolved plan: order, dependencies, placement, commands, resume decisions; nothing runs.
    Its text comes in pieces, to be written one after the other."""
    from sflow.workflow.dry_run import describe_plan_pieces

    return describe_plan_pieces(spec, settings.workspace_path(), settings.output_path(), run_plan)


__all__ = [
    "State",
    "dry_run_plan",
    "run_workflow",
]
