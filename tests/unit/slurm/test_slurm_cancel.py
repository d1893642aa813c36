"""What `sflow cancel` acts on, from a run's journal (no cluster)."""

from __future__ import annotations

from sflow.slurm.cancel import to_cancel
from sflow.slurm.journal import ALLOCATION, JOB, STEP, Entry


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
