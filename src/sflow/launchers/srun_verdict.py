"""How an srun step ended: from srun's exit code, what srun and slurmstepd printed, and what
each rank recorded.

srun's exit code alone is not the step's end state. When a node fails after the ranks on the
other nodes have exited 0, srun prints "Node failure on node2" and exits 0 (Slurm 22.05); a
rank whose slurmstepd is killed with it leaves no word at all. So every rank writes its exit
status to a file of its own (`<rank dir>/<SLURM_PROCID>`) when its script ends, and a step
succeeded only if srun exited 0, Slurm reported no node failure, and every rank of the step
recorded status 0. The rank files live beside the attempt's log, where the script itself is
read from, so every node of the step can write them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sflow.proc.attempt import describe_exit

# slurmstepd's verdict: "*** STEP 12.0 ON node1 CANCELLED AT <time> DUE TO NODE FAILURE, SEE
# SLURMCTLD LOG FOR DETAILS ***" (the clause after the comma is optional).
BANNER_RE = re.compile(
    r"\*\*\* (?:STEP (\d+\.\d+)|JOB (\d+)) ON \S+ ([A-Z_]+)(?: AT \S+)?"
    r"(?: DUE TO ([A-Z ]+?))?(?:,[^*]*)? \*\*\*"
)
# Why slurmstepd cancelled, as the Slurm state that reason stands for.
DUE_TO_STATES = {"TIME LIMIT": "TIMEOUT", "NODE FAILURE": "NODE_FAIL", "PREEMPTION": "PREEMPTED"}
NODE_FAILURE_RE = re.compile(r"^srun: error: Node failure on (\S+)", re.MULTILINE)
# The memory cgroup killed a process of the step (task/cgroup with ConstrainRAMSpace): slurmstepd's
# "Detected 1 oom-kill event(s) in StepId=12.0", srun's "node1: task 0: Out Of Memory".
OOM_RE = re.compile(
    r"Detected \d+ oom-kill event\(s\) in StepId=\d+\.\d+|^srun: error: \S+: tasks? [\d,-]+: Out Of Memory",
    re.MULTILINE,
)
# srun errors that mean "the controller cannot start the step just now" (it is restarting, busy,
# or still recovering the allocation), not "this step is wrong".
PASSING_START_ERRORS = (
    "unable to contact slurm controller",
    "socket timed out",
    "memory required by task is not available",
    "requested nodes are busy",
    "step creation temporarily disabled",
    "resource temporarily unavailable",
    "zero bytes were transmitted",
    "communication connection failure",
    "transport endpoint is not connected",
    "connection refused",
)
SRUN_ERROR_RE = re.compile(r"^srun: error: (.+)$", re.MULTILINE)
TASK_ERROR_RE = re.compile(r"(\S+): (tasks? [\d,-]+): (.+)")  # "node2: task 1: Exited with exit code 3"


@dataclass(frozen=True)
class RankRecords:
    """Exit statuses the ranks of a step wrote (`rank -> status`), and the step's rank count."""

    statuses: dict[int, int] = field(default_factory=dict)
    ntasks: int | None = None  # SLURM_STEP_NUM_TASKS as a rank saw it

    def unfinished(self, expected: int) -> list[int]:
        """Ranks that wrote nothing: killed with their node or slurmstepd, or never started."""
        total = self.ntasks or expected
        return [rank for rank in range(total) if rank not in self.statuses]


def read_rank_records(directory: Path) -> RankRecords | None:
    """The records in `directory` (one file per rank: "<status> <ntasks>"); None without the directory."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    statuses: dict[int, int] = {}
    ntasks: int | None = None
    for name in names:
        if not name.isdigit():
            continue
        try:
            words = (directory / name).read_text().split()
            statuses[int(name)] = int(words[0])
        except (OSError, ValueError, IndexError):
            continue  # a rank killed while writing: as if it wrote nothing
        if len(words) > 1 and words[1].isdigit():
            ntasks = int(words[1])
    return RankRecords(statuses, ntasks)


def parse_banner(log_tail: str) -> tuple[str | None, str | None]:
    """(step id, Slurm state) from slurmstepd's last '*** STEP 1.2 ON node CANCELLED ... ***' line."""
    matches = list(BANNER_RE.finditer(log_tail))
    if not matches:
        return None, None
    step, _job, state, due = matches[-1].groups()
    if due:
        due = due.strip()
        state = DUE_TO_STATES.get(due, f"{state} ({due.lower()})")
    return step, state


def failed_nodes(log_tail: str) -> list[str]:
    """Nodes srun reported a failure of ("srun: error: Node failure on node2"), in order, once each."""
    return list(dict.fromkeys(NODE_FAILURE_RE.findall(log_tail)))


def last_srun_error(log_tail: str) -> str | None:
    errors = SRUN_ERROR_RE.findall(log_tail)
    return errors[-1].strip() if errors else None


def step_error(log_tail: str) -> str | None:
    """srun's last error; when it is one task's end ("node2: task 1: Exited with exit code 3"), every
    node and task that ended the same way is named with it, not only the last to be reported."""
    last = last_srun_error(log_tail)
    own = TASK_ERROR_RE.match(last) if last else None
    if own is None:
        return last
    where = [
        f"{match[1]}: {match[2]}"
        for match in map(
            TASK_ERROR_RE.match, dict.fromkeys(e.strip() for e in SRUN_ERROR_RE.findall(log_tail))
        )
        if match is not None and match[3] == own[3]
    ]
    shown = ", ".join(where[:8]) + (", ..." if len(where) > 8 else "")
    return f"{shown}: {own[3]}"


@dataclass(frozen=True)
class StepVerdict:
    """The end of one srun: did the step complete on every node, its Slurm state, and why."""

    ok: bool
    state: str
    reason: str


def step_verdict(
    code: int,
    step: str | None,
    log_tail: str,
    ranks: RankRecords | None,
    expected_ranks: int,
    stopping: bool = False,
) -> StepVerdict:
    """Judge an ended srun (see the module docstring); `stopping` when sflow itself stopped it."""
    banner_step, state = parse_banner(log_tail)
    step = step or banner_step
    nodes = failed_nodes(log_tail)
    if nodes and state in (None, "CANCELLED", "FAILED"):
        state = "NODE_FAIL"
    if stopping and code != 0 and state is None:
        state = "CANCELLED"
    # (no step id and srun exited 0: the ranks never ran, e.g. slurmstepd could not start the tasks)
    unfinished = ranks.unfinished(expected_ranks) if ranks is not None and (step or code == 0) else []
    failed = sorted(r for r, status in ranks.statuses.items() if status != 0) if ranks else []
    if code == 0 and not (nodes or unfinished or failed) and state in (None, "COMPLETED"):
        return StepVerdict(True, "COMPLETED", describe_exit(0))
    state = state or "FAILED"
    if state == "FAILED" and OOM_RE.search(log_tail):  # (a task may outlive a child's OOM kill)
        state = "OUT_OF_MEMORY"
    facts = [f"node failure on {', '.join(nodes)}"] if nodes else []
    error = step_error(log_tail)
    if error and not error.startswith("Node failure on"):
        facts.append(error)
    total = (ranks.ntasks if ranks else None) or expected_ranks
    if failed and code == 0:  # srun's exit code says nothing of them
        assert ranks is not None
        statuses = ", ".join(f"{ranks.statuses[r]}" for r in failed[:8])
        facts.append(f"{_ranks_text(failed)} of {total} ended with status {statuses}")
    if unfinished:
        facts.append(f"{_ranks_text(unfinished)} of {total} never recorded an end")
    what = f"step {step} {state}" if step else "no step started"
    if facts:
        what += ": " + "; ".join(facts)
    reason = describe_exit(code)
    if code == 0:
        reason += " but the step did not complete on every node"
    return StepVerdict(False, state, f"{reason} ({what})")


def recorded(verdict: StepVerdict, step: str, state: str | None) -> StepVerdict:
    """A failed step's verdict with the end state accounting recorded for it (`sacct`), when that
    says more than FAILED: srun's words do not always name an OOM kill or a node failure."""
    if verdict.ok or not state or state in ("FAILED", verdict.state):
        return verdict
    reason = verdict.reason.replace(f"step {step} {verdict.state}", f"step {step} {state}", 1)
    return StepVerdict(False, state, reason)


def passing_start_error(code: int, step: str | None, log_tail: str, ranks: RankRecords | None) -> str | None:
    """srun's error when the step never started for a reason that passes (see
    `PASSING_START_ERRORS`); None otherwise. `log_tail` is what this srun alone printed."""
    if code == 0 or step or (ranks is not None and ranks.statuses) or parse_banner(log_tail)[0]:
        return None
    error = last_srun_error(log_tail)
    if error and any(marker in error.lower() for marker in PASSING_START_ERRORS):
        return error
    return None


def _ranks_text(ranks: list[int]) -> str:
    shown = ", ".join(map(str, ranks[:8])) + (", ..." if len(ranks) > 8 else "")
    return f"rank {shown}" if len(ranks) == 1 else f"ranks {shown}"
