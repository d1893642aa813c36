"""sbatch so that no job is lost or left behind: each submission carries a unique `--comment`.

The controller can create a job and still fail to answer ("Socket timed out"), and a Ctrl-C
can kill sbatch after the controller created the job. Either way the job exists and nobody
knows its id. With a unique comment it can be found again:
- a lost answer: before sbatch is retried, the job is looked up and adopted (no second job);
- a cancelled submission: the job is looked up for a short while (the controller may still
  be working on the request) and scancelled.

With a journal, the tag is written to the run's `slurm.jsonl` before sbatch runs: a run killed
before sbatch printed the id leaves a job `sflow cancel` still finds (`tagged_jobs`).

Both the dispatch Slurm executor and `sflow batch --submit` submit this way.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import secrets
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sflow.slurm.commands import (
    RETRY_QUERY,
    RETRY_SUBMIT,
    SlurmCommandError,
    SlurmResult,
    normalize_state,
    run_once,
    run_slurm,
)
from sflow.slurm.journal import SUBMITTING, SlurmJournal

log = logging.getLogger(__name__)

CLEANUP_WINDOW = 2.0  # seconds to look for the job of a cancelled sbatch


def new_tag(prefix: str = "sflow") -> str:
    """A comment no other job has: `<prefix>:<random>`."""
    return f"{prefix}:{secrets.token_hex(8)}"


@dataclass(frozen=True)
class TaggedJob:
    """A job of ours found by its tag: its id (an array's: the array id) and state."""

    job_id: str
    state: str


async def tagged_jobs(
    names: Collection[str],
    tags: Collection[str],
    *,
    squeue: Sequence[str] = ("squeue",),
    timeout: float = 60.0,
    error_type: type[SlurmCommandError] = SlurmCommandError,
) -> dict[str, TaggedJob]:
    """{tag: job} of this user's jobs named one of `names` whose comment is one of `tags`, in any
    state Slurm still lists. Only this user's jobs: another's may carry the same comment."""
    if not names or not tags:
        return {}
    argv = [*squeue, "-h", "-t", "all", "-u", getpass.getuser(), "-n", ",".join(sorted(names))]
    result = await run_once([*argv, "-o", "%i|%k|%T"], timeout=timeout, error_type=error_type)
    found: dict[str, TaggedJob] = {}
    for line in result.stdout.splitlines():
        job, comment, state = [*line.split("|", 2), ""][:3]
        if comment.strip() in tags:
            job_id = job.strip().split("_", 1)[0]
            found.setdefault(comment.strip(), TaggedJob(job_id, normalize_state(state)))
    return found


@dataclass
class TaggedSubmission:
    """One sbatch whose job is named `job_name` and commented `tag` (argv must set both)."""

    job_name: str
    tag: str
    squeue: Sequence[str] = ("squeue",)
    scancel: Sequence[str] = ("scancel",)
    timeout: float = 60.0  # per Slurm command
    attempts: int = 6
    error_type: type[SlurmCommandError] = SlurmCommandError
    cleanup_window: float = CLEANUP_WINDOW
    cancelled_job: str | None = None  # the job a cancelled submission had created (scancelled)
    journal: SlurmJournal | None = None  # where the tag goes before sbatch runs

    async def submit(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> SlurmResult:
        """Run sbatch (retrying transient errors, adopting a job whose answer was lost)."""
        if self.journal is not None:
            self.journal.add(SUBMITTING, self.tag, name=self.job_name)

        async def adopt() -> SlurmResult | None:
            found = await self.find()
            if found:
                log.warning("adopting job %s: sbatch created it before its answer was lost", found)
            return SlurmResult(found) if found else None

        try:
            return await run_slurm(
                argv,
                retry=RETRY_SUBMIT,
                env=env,
                attempts=self.attempts,
                timeout=self.timeout,
                find_submitted=adopt,
                error_type=self.error_type,
            )
        except asyncio.CancelledError:  # Ctrl-C, aclose: sbatch is killed, its job may exist
            self.cancelled_job = await self.cancel_unanswered()
            raise

    async def find(self) -> str | None:
        """The id of our job with this comment (an array: its id), in any state; None if none."""
        try:
            found = await tagged_jobs(
                [self.job_name],
                [self.tag],
                squeue=self.squeue,
                timeout=self.timeout,
                error_type=self.error_type,
            )
        except SlurmCommandError:
            return None
        return found[self.tag].job_id if self.tag in found else None

    async def cancel_unanswered(self) -> str | None:
        """scancel the job a cancelled sbatch may have created; its id, or None when none showed up.

        Looked up a few times over `cleanup_window` seconds. A second cancellation stops the search.
        """
        deadline = time.monotonic() + self.cleanup_window
        delay = 0.25
        while True:
            found = await self.find()
            if found:
                log.warning("scancel job %s: its submission was cancelled while sbatch ran", found)
                try:
                    await run_slurm(
                        [*self.scancel, found],
                        retry=RETRY_QUERY,
                        attempts=self.attempts,
                        timeout=self.timeout,
                        error_type=self.error_type,
                    )
                except SlurmCommandError as exc:
                    log.warning("scancel %s failed: %s", found, exc)
                return found
            if time.monotonic() + delay > deadline:
                log.debug("no job tagged %s after a cancelled sbatch", self.tag)
                return None
            await asyncio.sleep(delay)
            delay *= 2
