"""`sflow runs`, `sflow status` and `sflow clean`: past and live runs as text."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from sflow.record.history import RunRow, forget, list_runs
from sflow.record.status import (
    CANCEL_FILE,
    RunStatus,
    TaskStatus,
    clock,
    owner_alive,
    read_json,
    read_status,
    span,
    waiting,
)
from sflow.slurm.cancel import unconfirmed
from sflow.slurm.journal import read_journal


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, two spaces apart; the last one unpadded."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def tally(counts: dict[str, int]) -> str:
    order = ("succeeded", "failed", "cancelled", "skipped", "running", "ready", "retrying", "pending")
    known = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    return ", ".join(known + [f"{n} {s}" for s, n in counts.items() if s not in order and n])


# -- sflow runs -------------------------------------------------------------------------------------


def show_runs(
    output_dir: Path,
    workflow: str | None = None,
    state: str | None = None,
    since: float | None = None,
    last: int = 20,
) -> str:
    """The runs under `output_dir` that match, oldest first, at most the `last` newest."""
    rows = [
        r
        for r in list_runs(output_dir)
        if (workflow is None or r.workflow == workflow)
        and (state is None or r.state == state)
        and (since is None or (r.started or 0) >= time.time() - since)
    ]
    if not rows:
        return f"no runs under {output_dir}" + (" that match" if workflow or state or since else "")
    shown = rows[-last:] if last > 0 else rows
    marked = {r.run_id for r in shown if r.state == "killed" and submitting(r.run_dir)}
    table = format_table(
        ("RUN", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS"),
        [_run_row(r, r.run_id in marked) for r in shown],
    )
    if len(shown) < len(rows):
        table += f"\n({len(rows) - len(shown)} older run(s) not shown; --last 0 shows all)"
    if marked:
        table += f"\n* {SUBMITTING_NOTE}"
    return table


def _run_row(row: RunRow, marked: bool) -> tuple[str, ...]:
    state = row.state + ("*" if marked else "")
    return (row.run_id, row.workflow, state, clock(row.started), span(row.duration), tally(row.counts))


SUBMITTING_NOTE = (
    "sflow died while submitting Slurm jobs whose ids it never recorded: sflow cancel RUN finds them"
)


def submitting(run_dir: Path) -> int:
    """How many submissions the run was making when its sflow died (no job id in its journal)."""
    return len(unconfirmed(read_journal(run_dir)))


# -- sflow status -----------------------------------------------------------------------------------


def show_status(run_dir: Path) -> str:
    """A run's header and one row per task, whether it runs, ended, or its sflow was killed."""
    status = read_status(run_dir.resolve())
    rows = [_task_row(t, status) for t in status.tasks.values()]
    table = format_table(
        ("TASK", "STATE", "ATTEMPTS", "EXIT", "JOB/STEP", "DURATION", "NODES", "DETAIL"), rows
    )
    return f"{_status_head(status)}\n\n{table}"


def _status_head(status: RunStatus) -> str:
    head = f"run {status.run_id}  workflow {status.workflow}  {status.state}"
    if status.resumed_from:
        head += f"  (resumed from {status.resumed_from})"
    owner = status.owner
    who = f"sflow pid {owner.get('pid')} on {owner.get('host')}"
    if status.state == "running":
        took = time.time() - status.started if status.started else None
        head += f"\nstarted {clock(status.started)}, running for {span(took)} ({who})"
    elif status.state == "cancelled":
        when = clock((read_json(status.run_dir / CANCEL_FILE) or {}).get("time"))
        head += f"\nstarted {clock(status.started)}; stopped by sflow cancel at {when}"
    elif status.state == "killed":
        head += (
            f"\nstarted {clock(status.started)}; {who} is gone without finishing the run: "
            "states are the last it recorded"
        )
        pending = submitting(status.run_dir)
        if pending:
            head += f"\n{pending} submission(s) under way: {SUBMITTING_NOTE}"
    else:
        took = status.ended - status.started if status.ended and status.started else None
        head += f"\nstarted {clock(status.started)}, took {span(took)}"
        if status.stop_reason:
            head += f"; stopped: {status.stop_reason}"
    head += f"\n{tally(status.counts())}; run dir {status.run_dir}"
    return head


def _task_row(task: TaskStatus, status: RunStatus) -> tuple[str, ...]:
    info = task.info
    code = info.get("slurm_state") or ("" if task.exit_code is None else str(task.exit_code))
    job = str(info.get("slurm_step_id") or info.get("slurm_job_id") or "")
    live = task.state in ("running", "ready", "retrying", "stopping")
    took = task.duration
    if live and task.start is not None:
        took = (
            status.ended if status.state in ("killed", "cancelled") and status.ended else time.time()
        ) - task.start
    return (
        task.name,
        task.state,
        str(task.attempts),
        code or "-",
        job or "-",
        span(took),
        ",".join(info.get("nodes") or []) or "-",
        _detail(task, status),
    )


def _detail(task: TaskStatus, status: RunStatus) -> str:
    if "kept_from" in task.info:
        return f"kept from {task.info['kept_from']}"
    if task.state in ("running", "ready", "retrying", "stopping") and status.state in ("killed", "cancelled"):
        return "was running when its sflow died"
    if task.state == "pending":
        return _waits(task.name, status)
    return task.reason if task.state != "succeeded" else ""


def _waits(name: str, status: RunStatus) -> str:
    """`waits on dependencies: a, b, c ...`; placement's reason only while the run goes on."""
    plan = status.plan.get(name, {})
    why = waiting(
        status.deps.get(name, ()),
        lambda d: status.tasks[d].state if d in status.tasks else "pending",
        lambda d: bool(status.plan.get(d, {}).get("service")),
        bool(plan.get("gpus")),
    )
    return f"waits {why.naming()}" if why.on or status.state == "running" else ""


# -- sflow clean ------------------------------------------------------------------------------------


def plan_clean(
    output_dir: Path, older_than: float | None, keep: int | None, workflow: str | None
) -> tuple[list[RunRow], list[tuple[RunRow, str]]]:
    """Runs to remove, and runs spared with the reason (running, or linked by a run that stays).

    With both limits a run goes only when it is older than `older_than` and not among the
    `keep` newest of its workflow.
    """
    every = list_runs(output_dir)
    rows = [r for r in every if workflow is None or r.workflow == workflow]
    newest: dict[str, list[RunRow]] = {}
    for row in reversed(rows):
        newest.setdefault(row.workflow, []).append(row)
    kept_by_count = {r.run_id for runs in newest.values() for r in runs[: keep or 0]} if keep else set()
    cutoff = time.time() - older_than if older_than is not None else None
    chosen = [
        r for r in rows if r.run_id not in kept_by_count and (cutoff is None or (r.started or 0) < cutoff)
    ]
    spared: list[tuple[RunRow, str]] = []
    for row in [r for r in chosen if r.state == "running" and owner_alive(r.owner)]:
        spared.append((row, "still running"))
    going = {r.run_id for r in chosen} - {r.run_id for r, _ in spared}
    links = _linked_runs(output_dir, [r for r in every if r.run_id not in going])
    for row in chosen:
        if row.run_id in going and row.run_id in links:
            spared.append((row, f"run {links[row.run_id]} keeps tasks it made"))
            going.discard(row.run_id)
    return [r for r in chosen if r.run_id in going], spared


def _linked_runs(output_dir: Path, staying: list[RunRow]) -> dict[str, str]:
    """Run id -> a staying run whose kept tasks link into it (removing it would break them)."""
    out: dict[str, str] = {}
    for row in staying:
        if not row.resumed_from:
            continue
        for entry in row.run_dir.iterdir():
            if entry.is_symlink():
                target = Path(os.path.realpath(entry))
                if target.parent.parent == output_dir.resolve():
                    out.setdefault(target.parent.name, row.run_id)
    return out


def clean(output_dir: Path, going: list[RunRow], spared: list[tuple[RunRow, str]], really: bool) -> str:
    lines = [f"spare {row.run_id} ({why})" for row, why in spared]
    size = sum(_size(r.run_dir) for r in going)
    verb = "remove" if really else "would remove"
    for row in going:
        lines.append(f"{verb} {row.run_id}  {row.workflow}  {row.state}  {clock(row.started)}")
        if really:
            shutil.rmtree(row.run_dir)
    if really:
        forget(output_dir, [r.run_id for r in going])
    total = f"{len(going)} run(s), {size / 1e6:.1f} MB"
    lines.append(f"removed {total}" if really else f"{total} to remove; run again with --yes to remove them")
    return "\n".join(lines)


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
