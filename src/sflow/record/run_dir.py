"""The run directory: one folder per run, one per task, every attempt's log, and summary.json.

Layout::

    <output-dir>/<run-id>/sflow.log              human-readable event log
    <output-dir>/<run-id>/events.jsonl           the same events, one JSON object a line
    <output-dir>/<run-id>/summary.json           final state of every task
    <output-dir>/<run-id>/slurm.jsonl            Slurm allocations, steps and jobs, as they start
    <output-dir>/<run-id>/<task>/<task>.log      the last attempt's output
    <output-dir>/<run-id>/<task>/<task>.attempt1.log, ...   earlier attempts, kept
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import IO, Any

from sflow.engine import Event, RunResult, State
from sflow.errors import UserError
from sflow.record.outputs import table_row, write_table_csv
from sflow.record.status import WHERE, boot_id, count_item_failure, process_start

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_run_id(workflow_name: str, now: float | None = None) -> str:
    """Sortable by time, names the workflow, unique: `20261122-031500-123-mywf-3fa2`."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    suffix = os.urandom(2).hex()  # what `secrets.token_hex(2)` is, without loading `random`
    return f"{stamp}-{safe_name(workflow_name)}-{suffix}"


def safe_name(name: str) -> str:
    """A file-system-safe form of a task or workflow name."""
    return _UNSAFE.sub("_", name).strip("._") or "task"


class RunRecord:
    """Owns one run directory; its `on_event` is an engine listener."""

    def __init__(
        self,
        output_dir: Path,
        workflow_name: str,
        run_id: str | None = None,
        resumed_from: str | None = None,
    ) -> None:
        self.workflow_name = workflow_name
        self.run_id = run_id or new_run_id(workflow_name)
        self.output_dir = output_dir.resolve()
        self.run_dir = self.output_dir / self.run_id
        owner = _owner(self.run_id, workflow_name)
        self.started: float = owner["started"]  # wall clock, as `sflow runs` counts a run
        if resumed_from:
            owner["resumed_from"] = resumed_from
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _write_json(self.run_dir / "run.json", owner)
        except OSError as exc:
            raise UserError(
                f"cannot create the run directory {self.run_dir}: {exc.strerror or exc}"
            ) from None
        # line-buffered: a run killed outright (OOM, a Slurm time limit) keeps every event it had
        self._human: IO[str] = open(self.run_dir / "sflow.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._events: IO[str] = open(self.run_dir / "events.jsonl", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self.task_info: dict[str, dict[str, Any]] = {}
        self.sweep_rows: dict[str, list[dict[str, Any]]] = {}
        self._task_dirs: dict[str, Path] = {}

    # -- paths -------------------------------------------------------------------------------

    def task_dir(self, task: str) -> Path:
        """`<run-dir>/<task>/`, created on first use."""
        path = self._task_dirs.get(task)
        if path is None:
            path = self._task_dirs[task] = self.run_dir / safe_name(task)
            path.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, task: str) -> Path:
        return self.task_dir(task) / f"{safe_name(task)}.log"

    def attempt_log(self, task: str, attempt: int) -> Path:
        """The log path for `attempt`; the previous attempt's log is moved aside, never overwritten."""
        path = self.log_path(task)
        if attempt > 1 and path.exists():
            path.rename(path.with_name(f"{safe_name(task)}.attempt{attempt - 1}.log"))
        return path

    def write_plan(self, tasks: dict[str, dict[str, Any]]) -> None:
        """`plan.json`: every task of the run before any starts (dependencies, fingerprint, ...).

        What `sflow status` shows of tasks that never started, and what a resumed run compares.
        """
        _write_json(self.run_dir / "plan.json", {"run_id": self.run_id, "tasks": tasks})

    def keep(self, task: str, origin_dir: Path, origin_run: str, entry: dict[str, Any]) -> None:
        """A task whose result an earlier run made: its folder here links to that run's folder.

        Its log and outputs stay where they were written (nothing of the earlier run is touched)
        and are reachable from this run; its summary entry says which run made them.
        """
        link = self.run_dir / safe_name(task)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(_relative(origin_dir, self.run_dir))
        self._task_dirs[task] = link
        kept = {k: v for k, v in entry.items() if k not in ("state", "reason")}
        self.task_info[task] = {**kept, "kept_from": origin_run}

    # -- events ------------------------------------------------------------------------------

    def note(self, message: str) -> None:
        """A line in sflow.log that is not a task event (allocation, teardown)."""
        self._human.write(f"{_stamp(time.time())} {message}\n")

    def on_event(self, event: Event) -> None:
        info = self.task_info.setdefault(event.unit, {})
        if event.attempt_obj is not None:
            info.update(event.attempt_obj.info)
            if event.attempt_obj.log_path is not None:
                info["log"] = str(event.attempt_obj.log_path)
        if event.outcome is not None and event.outcome.info:
            info.update(event.outcome.info)
        line: dict[str, Any] = {"time": event.time, "task": event.unit, "state": event.state.value}
        line["attempt"] = event.attempt
        if event.state is State.RUNNING:  # where this attempt runs: `sflow status` and the report's timeline
            if "pid" in info:  # its process group, told apart from a reused pid (`sflow cancel`)
                info["pid_start"] = process_start(int(info["pid"]))
            line.update({k: info[k] for k in WHERE if k in info})
        if event.outcome is not None and event.outcome.reason:
            line["reason"] = event.outcome.reason
        if event.outcome is not None and event.outcome.exit_code is not None:
            line["exit_code"] = event.outcome.exit_code
        if event.message:
            line["message"] = event.message
        self._events.write(json.dumps(line) + "\n")
        self._human.write(_human_line(event) + "\n")

    def item_event(self, task: str, index: int, attempt: int, reason: str, retried: bool) -> None:
        """One attempt of one item of a mapped task: failed (`reason`), or succeeded after a failure."""
        state = ("retrying" if retried else "failed") if reason else "succeeded"
        line: dict[str, Any] = {"time": time.time(), "task": task, "item": index, "attempt": attempt}
        line["state"] = state
        if reason:
            line["reason"] = reason
            count_item_failure(self.task_info.setdefault(task, {}), line)
        self._events.write(json.dumps(line) + "\n")
        text = f"{_stamp(line['time'])} {task}: item {index} attempt {attempt} {state}"
        self._human.write(text + (f" ({reason})" if reason else "") + "\n")

    def set_outputs(
        self,
        task: str,
        values: dict[str, Any],
        replica_of: str | None = None,
        replica_index: int | None = None,
        sweep: dict[str, Any] | None = None,
    ) -> None:
        """Outputs of a finished task; replicas of one task also form a table (`<task>.outputs.csv`)."""
        self.task_info.setdefault(task, {})["outputs"] = values
        if replica_of is not None:
            base = replica_of
            self.sweep_rows.setdefault(base, []).append(table_row(replica_index, sweep or {}, values))

    def write_sweep_table(self, base: str) -> Path:
        """`<run-dir>/<base>.outputs.csv` from the rows so far, in replica order."""
        rows = self.sweep_rows.setdefault(base, [])
        rows.sort(key=lambda r: r.get("replica_index") or 0)
        return write_table_csv(self.run_dir / f"{safe_name(base)}.outputs.csv", rows)

    def _write_sweep_tables(self) -> dict[str, str]:
        return {base: str(self.write_sweep_table(base)) for base in self.sweep_rows}

    # -- summary -----------------------------------------------------------------------------

    def write_summary(self, result: RunResult, extra: dict[str, Any] | None = None) -> Path:
        """Write summary.json atomically and return its path."""
        tasks = {}
        for name in result.order:
            r = result.units[name]
            info = self.task_info.get(name, {})
            entry: dict[str, Any] = {
                "state": r.state.value,
                "attempts": r.attempts,
                "exit_code": r.outcome.exit_code if r.outcome else None,
                "reason": r.outcome.reason if r.outcome else "",
                "start": r.started,
                "ready": r.ready,
                "end": r.ended,
                "log": info.get("log") or (str(self.log_path(name)) if r.attempts else None),
            }
            if "kept_from" in info:  # made by an earlier run: its attempts and times, not ours
                entry.update({k: v for k, v in info.items() if k in _MADE_BY and k in info})
            entry.update({k: v for k, v in info.items() if k not in entry and _jsonable(v)})
            tasks[name] = entry
        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "workflow": self.workflow_name,
            "ok": result.ok,
            "stop_reason": result.stop_reason,
            "interrupted": result.interrupted,
            "elapsed": round(result.elapsed, 6),
            "run_dir": str(self.run_dir),
            "tasks": tasks,
        }
        if self.sweep_rows:
            tables = self._write_sweep_tables()
            summary["sweeps"] = {
                base: {"rows": rows, "csv": tables[base]} for base, rows in self.sweep_rows.items()
            }
        if extra:
            summary.update(extra)
        path = self.run_dir / "summary.json"
        _write_json(path, summary)
        counts: dict[str, int] = {}
        for entry in tasks.values():
            counts[entry["state"]] = counts.get(entry["state"], 0) + 1
        self._index("succeeded" if result.ok else "interrupted" if result.interrupted else "failed", counts)
        return path

    def _index(self, state: str, counts: dict[str, int]) -> None:
        """This run's row in the run index (`sflow runs`), written once it has ended (listing adds a
        run still going from its folder, as the index lacks it); never an error of the run."""
        from sflow.record.history import record_run, row_of_owner

        record_run(self.output_dir, row_of_owner(self.run_dir, state, counts))

    def close(self) -> None:
        self._events.close()
        self._human.close()


_MADE_BY = ("attempts", "exit_code", "start", "ready", "end", "log")


def _relative(target: Path, run_dir: Path) -> Path:
    """`../<run>/<task>` for a run in the same output folder (still valid if the folder moves)."""
    return Path(os.path.relpath(target, run_dir)) if target.parent.parent == run_dir.parent else target


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(readable_json(data), encoding="utf-8")
    os.replace(tmp, path)


def readable_json(data: dict[str, Any]) -> str:
    """JSON indented for its first two levels, one line per entry below (a task in a summary).

    As readable as `indent=2` for a summary and fast for a big one: json's C encoder only
    works without `indent`.
    """
    lines = ["{"]
    for i, (key, value) in enumerate(data.items()):
        comma = "," if i < len(data) - 1 else ""
        if isinstance(value, dict) and value:
            lines.append(f"  {json.dumps(key)}: {{")
            lines.extend(
                f"    {json.dumps(k)}: {json.dumps(v)}{',' if j < len(value) - 1 else ''}"
                for j, (k, v) in enumerate(value.items())
            )
            lines.append("  }" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _owner(run_id: str, workflow: str) -> dict[str, Any]:
    """Who runs this run (`run.json`): lets `sflow logs -f` stop following a run whose sflow died."""
    return {
        "run_id": run_id,
        "workflow": workflow,
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "boot_id": boot_id(),
        "host": socket.gethostname(),
        "started": time.time(),
    }


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict, type(None)))


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def _human_line(event: Event) -> str:
    text = f"{_stamp(event.time)} {event.unit}: {event.state.value}"
    if event.state is State.RUNNING:
        text += f" (attempt {event.attempt})"
    if event.outcome is not None and event.outcome.reason:
        text += f" ({event.outcome.reason})"
    if event.message:
        text += f" ({event.message})" if event.state is State.STOPPING else f" {event.message}"
    return text
