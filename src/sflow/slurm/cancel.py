"""Cancel what a run holds in Slurm, from its journal (`sflow cancel RUN`).

What is cancelled: the allocations sflow made (`owned`), the steps it started in an allocation
it did not make (a reused one is never cancelled: it is the user's), the jobs a Python flow
dispatched, and the jobs of submissions the run was making when it died (sbatch or salloc had
not printed their ids yet): those are found in Slurm by the tag the journal holds, among this
user's jobs only. One squeue for all of them says which are still alive; one scancel ends those.
Running it again finds them ended and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sflow.slurm.commands import FINAL_STATES, SlurmCommandError, normalize_state, run_slurm
from sflow.slurm.journal import ALLOCATION, JOB, STEP, SUBMITTING, Entry
from sflow.slurm.submit import tagged_jobs


@dataclass(frozen=True)
class Cancelled:
    """What became of one Slurm id: `cancelled`, or `ended` (it had already) with its last state."""

    entry: Entry
    outcome: str
    state: str = ""


def to_cancel(entries: Sequence[Entry]) -> list[Entry]:
    """The entries a cancel acts on: owned allocations, steps outside them, dispatched jobs."""
    owned = {e.slurm_id for e in entries if e.kind == ALLOCATION and e.owned}
    chosen = []
    for entry in entries:
        if entry.kind == ALLOCATION:
            if entry.owned:
                chosen.append(entry)
        elif entry.kind == STEP:
            if entry.job_id not in owned:  # steps of an owned allocation end with it
                chosen.append(entry)
        elif entry.kind == JOB:
            chosen.append(entry)
    return chosen


def unconfirmed(entries: Sequence[Entry]) -> list[Entry]:
    """Submissions whose job id the journal never got (sflow died while sbatch or salloc ran)."""
    confirmed = {e.tag for e in entries if e.kind != SUBMITTING}
    return [e for e in entries if e.kind == SUBMITTING and e.slurm_id not in confirmed]


async def cancel_entries(entries: Sequence[Entry]) -> list[Cancelled]:
    """scancel every entry of `to_cancel(entries)`, and every job of `unconfirmed(entries)`, that
    Slurm still lists as alive."""
    chosen = to_cancel(entries) + await _found_by_tag(unconfirmed(entries))
    if not chosen:
        return []
    alive = await _alive_states([e.slurm_id for e in chosen])
    live = [e for e in chosen if e.slurm_id in alive]
    if live:
        await run_slurm(["scancel", *[e.slurm_id for e in live]])
    return [
        Cancelled(e, "cancelled", alive[e.slurm_id]) if e.slurm_id in alive else Cancelled(e, "ended")
        for e in chosen
    ]


async def _found_by_tag(submissions: Sequence[Entry]) -> list[Entry]:
    """The jobs of these submissions, as journal entries (`found_by_tag`): this user's jobs of
    their names whose comment is their tag."""
    names = {str(dict(e.info).get("name", "")) for e in submissions} - {""}
    tags = {e.slurm_id: e for e in submissions}
    found = await tagged_jobs(names, tags.keys(), timeout=30.0)
    kinds = {tag: str(dict(tags[tag].info).get("submits", JOB)) for tag in found}
    return [
        Entry(kinds[tag], job.job_id, info=(("found_by_tag", tag), ("tag", tag)))
        for tag, job in sorted(found.items(), key=lambda item: item[1].job_id)
    ]


async def _alive_states(ids: list[str]) -> dict[str, str]:
    """{id: state} of the jobs and steps among `ids` that have not ended (a listed step: RUNNING)."""
    jobs = ",".join(sorted({i.split(".", 1)[0].split("_", 1)[0] for i in ids}))
    states: dict[str, str] = {}
    for line in (await _squeue(["-r", "-j", jobs, "-o", "%i %T"])).splitlines():
        words = line.split()
        if len(words) >= 2 and normalize_state(words[1]) not in FINAL_STATES:
            states[words[0]] = normalize_state(words[1])
            master = words[0].split("_", 1)[0]  # a job array lives while one of its elements does
            states.setdefault(master, states[words[0]])
    if any("." in i for i in ids):
        for step in (await _squeue(["--steps", "-j", jobs, "-o", "%i"])).split():
            states[step] = "RUNNING"
    return {i: states[i] for i in ids if i in states}


async def _squeue(args: list[str]) -> str:
    try:
        return (await run_slurm(["squeue", "-h", *args], timeout=30.0)).stdout
    except SlurmCommandError as exc:
        if exc.invalid_job:  # every one of them has ended and been purged
            return ""
        raise
