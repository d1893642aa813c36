"""What `sflow cancel` acts on, from a run's journal (no cluster)."""

from __future__ import annotations

from pathlib import Path

from sflow.slurm.cancel import to_cancel, unconfirmed
from sflow.slurm.journal import ALLOCATION, JOB, STEP, SUBMITTING, Entry, SlurmJournal, read_journal


def test_owned_allocations_steps_outside_them_and_dispatched_jobs() -> None:
    entries = [
        Entry(ALLOCATION, "10", owned=True),  # made by sflow: cancelled, its steps with it
        Entry(STEP, "10.0"),
        Entry(ALLOCATION, "20", owned=False),  # the user's, sflow ran inside it: never cancelled
        Entry(STEP, "20.3"),
        Entry(JOB, "30_4"),
    ]
    assert [e.slurm_id for e in to_cancel(entries)] == ["10", "20.3", "30_4"]
    assert to_cancel([]) == []


def test_a_submission_whose_job_id_was_never_journalled_is_unconfirmed(tmp_path: Path) -> None:
    journal = SlurmJournal(tmp_path)
    journal.add(SUBMITTING, "sflow:r:1", name="sflow-a")
    journal.add(JOB, "41", name="sflow-a", tag="sflow:r:1")  # sbatch answered
    journal.add(SUBMITTING, "sflow:r:2", name="sflow-b")  # sflow died before it answered
    journal.add(SUBMITTING, "sflow:r:3", name="sflow", submits=ALLOCATION)
    journal.add(ALLOCATION, "42", tag="sflow:r:3")
    journal.close()
    entries = read_journal(tmp_path)
    assert [e.slurm_id for e in unconfirmed(entries)] == ["sflow:r:2"]
    assert [e.slurm_id for e in to_cancel(entries)] == ["41", "42"]  # a tag is never an id to scancel
