"""How an allocation that ended under a run is described, and the journal of a run's Slurm ids (no cluster)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sflow.backends.slurm_watch import cancelled_by, describe_end, job_fields, unhealthy_nodes
from sflow.slurm.journal import ALLOCATION, JOB, STEP, Entry, SlurmJournal, read_journal


def test_the_end_of_an_allocation_in_one_sentence() -> None:
    assert describe_end("12", "c", "CANCELLED") == "Slurm allocation 12 (backend 'c') was cancelled"
    assert describe_end("12", "c", "CANCELLED", "None", by="alice (uid 1000)") == (
        "Slurm allocation 12 (backend 'c') was cancelled by alice (uid 1000)"
    )
    assert describe_end("12", "c", "NODE_FAIL", "NodeDown", failed_nodes="node fnode2 is down") == (
        "Slurm allocation 12 (backend 'c') ended: a node failed (NODE_FAIL), reason NodeDown; node fnode2 is down"
    )
    assert describe_end("12", "c", "TIMEOUT", "TimeLimit").startswith(
        "Slurm allocation 12 (backend 'c') reached its time limit (TIMEOUT)"
    )
    assert describe_end("12", "c", "GONE") == "Slurm allocation 12 (backend 'c') is no longer known to Slurm"
    assert describe_end("12", "c", "BOOT_FAIL") == "Slurm allocation 12 (backend 'c') ended: BOOT_FAIL"


def test_who_cancelled_as_accounting_says_it() -> None:
    assert cancelled_by("CANCELLED by 0\n") == "root (uid 0)"
    assert cancelled_by("CANCELLED by 4294967") == "uid 4294967"
    assert cancelled_by("") == "" and cancelled_by("CANCELLED") == ""


def test_only_unhealthy_nodes_are_named() -> None:
    sinfo = "fnode1|alloc|none\nfnode2|down*|Not responding\nfnode3|drain|bad disk\nfnode4|mix*|none\n"
    assert unhealthy_nodes(sinfo) == (
        "nodes fnode2 is down and not responding, fnode3 is drain (bad disk), fnode4 is mix and not responding"
    )
    assert unhealthy_nodes("fnode1|idle|none\n") == ""
    assert unhealthy_nodes("fnode2|down|sflow-fault-test\n") == "node fnode2 is down (sflow-fault-test)"


def test_job_fields() -> None:
    fields = job_fields("JobId=12 JobName=x JobState=NODE_FAIL Reason=NodeDown NodeList=fnode[1-2]")
    assert fields["JobState"] == "NODE_FAIL" and fields["NodeList"] == "fnode[1-2]"


def test_the_journal_is_written_as_ids_become_known(tmp_path: Path) -> None:
    journal = SlurmJournal(tmp_path)
    journal.add(ALLOCATION, "12", owned=True, backend="c")
    journal.add(STEP, "12.0", task="a")
    journal.add(STEP, "12.0", task="a")  # once per id
    # readable before the journal is closed: a run killed outright never closes it
    assert read_journal(tmp_path) == [
        Entry(ALLOCATION, "12", True, (("backend", "c"),)),
        Entry(STEP, "12.0", True, (("task", "a"),)),
    ]
    journal.close()
    with open(tmp_path / "slurm.jsonl", "a") as fh:
        fh.write('{"kind": "job", "id": "13_4", "owned": true')  # cut short by a crash
    assert [e.slurm_id for e in read_journal(tmp_path)] == ["12", "12.0"]
    assert Entry(STEP, "12.0").job_id == "12" and Entry(JOB, "14_2").job_id == "14"


def test_a_journal_without_a_run_directory_only_remembers(tmp_path: Path) -> None:
    journal = SlurmJournal()
    journal.add(ALLOCATION, "12")
    assert [e.slurm_id for e in journal.entries] == ["12"] and not os.listdir(tmp_path)
    assert read_journal(tmp_path) == []
    assert json.dumps([e.kind for e in journal.entries]) == '["allocation"]'
