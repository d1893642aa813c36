"""How an srun step ended: srun's exit code, its and slurmstepd's messages, each rank's record (no cluster)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from sflow.launchers.srun import STEP_FILE_ENV, STEP_RECORDER
from sflow.launchers.srun_verdict import (
    RankRecords,
    failed_nodes,
    last_srun_error,
    parse_banner,
    read_rank_records,
    recorded,
    step_verdict,
)

NODE_FAILURE_TAIL = """rank 0 on fnode1
rank 1 on fnode2
srun: error: Node failure on fnode2
srun: Job step aborted
"""
NODE_FAILURE_BANNER = (
    "slurmstepd-fnode1: error: *** STEP 1000005.0 ON fnode1 CANCELLED AT 2026-12-07T11:06:14 "
    "DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***\n"
)


def test_banners_name_the_state_slurm_means() -> None:
    tail = "x\nslurmstepd-node2: error: *** STEP 285.4 ON node2 CANCELLED AT 2026-11-22T00:27:04 ***\n"
    assert parse_banner(tail) == ("285.4", "CANCELLED")
    tail = "slurmstepd: error: *** STEP 9.1 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***"
    assert parse_banner(tail) == ("9.1", "TIMEOUT")
    tail = "slurmstepd: error: *** JOB 9 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO PREEMPTION ***"
    assert parse_banner(tail) == (None, "PREEMPTED")
    assert parse_banner(NODE_FAILURE_BANNER) == ("1000005.0", "NODE_FAIL")
    tail = "*** JOB 9 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO JOB REQUEUE ***"
    assert parse_banner(tail) == (None, "CANCELLED (job requeue)")
    assert parse_banner("nothing here") == (None, None)


def test_tasks_slurmstepd_could_not_start_fail_though_srun_exits_0() -> None:
    """Slurm 22.05's srun exits 0 when a SPANK plugin fails the task launch: no rank ever ran."""
    tail = (
        "slurmstepd-node1: error: spank: required plugin pyxis_lab.so: user_init() failed with rc=-1\n"
        "srun: error: task 0 launch failed: Slurmd could not execve job\n"
    )
    verdict = step_verdict(0, None, tail, RankRecords(), expected_ranks=1)
    assert not verdict.ok and verdict.state == "FAILED"
    assert "task 0 launch failed: Slurmd could not execve job" in verdict.reason
    assert "rank 0 of 1 never recorded an end" in verdict.reason


def test_node_failures_and_the_last_srun_error() -> None:
    tail = NODE_FAILURE_TAIL + "srun: error: Node failure on fnode2\nsrun: error: Node failure on fnode3\n"
    assert failed_nodes(tail) == ["fnode2", "fnode3"]
    assert last_srun_error("srun: error: a\nsrun: error: node1: task 0: Exited with exit code 3\n") == (
        "node1: task 0: Exited with exit code 3"
    )


def test_a_node_failure_after_the_other_ranks_exited_0_is_a_failure() -> None:
    # srun exits 0 here (Slurm 22.05): rank 0 finished before node 2 went down
    ranks = RankRecords({0: 0}, ntasks=2)
    verdict = step_verdict(0, "1000003.0", NODE_FAILURE_TAIL, ranks, expected_ranks=2)
    assert not verdict.ok
    assert verdict.state == "NODE_FAIL"
    assert verdict.reason == (
        "exit code 0 but the step did not complete on every node "
        "(step 1000003.0 NODE_FAIL: node failure on fnode2; rank 1 of 2 never recorded an end)"
    )


def test_a_rank_that_never_recorded_its_end_fails_the_step_even_without_a_message() -> None:
    # its slurmd, slurmstepd and task were killed: srun may say nothing before it exits 0
    verdict = step_verdict(0, "7.0", "", RankRecords({0: 0, 2: 0}, ntasks=4), expected_ranks=4)
    assert not verdict.ok and verdict.state == "FAILED"
    assert "ranks 1, 3 of 4 never recorded an end" in verdict.reason
    # no rank at all recorded (and none said how many there were): the planned count is used
    verdict = step_verdict(0, "7.1", "", RankRecords(), expected_ranks=2)
    assert "ranks 0, 1 of 2 never recorded an end" in verdict.reason


def test_a_step_that_completed_everywhere_succeeds() -> None:
    verdict = step_verdict(0, "7.0", "all good\n", RankRecords({0: 0, 1: 0}, ntasks=2), expected_ranks=2)
    assert verdict.ok and verdict.state == "COMPLETED" and verdict.reason == "exit code 0"
    # without a rank directory (it could not be made) srun's word stands
    assert step_verdict(0, "7.0", "", None, expected_ranks=2).ok


def test_every_node_whose_tasks_ended_the_same_way_is_named() -> None:
    tail = (
        "srun: error: node1: task 0: Exited with exit code 3\n"
        "srun: error: node2: task 1: Killed\n"
        "srun: error: node2: tasks 2-3: Exited with exit code 3\n"
    )
    verdict = step_verdict(3, "12.4", tail, RankRecords({0: 3, 1: 9, 2: 3, 3: 3}, 4), expected_ranks=4)
    assert verdict.reason == (
        "exit code 3 (step 12.4 FAILED: node1: task 0, node2: tasks 2-3: Exited with exit code 3)"
    )


def test_a_failing_step_names_its_state_and_slurms_words() -> None:
    tail = "srun: error: a\nsrun: error: node1: task 0: Exited with exit code 3\n"
    verdict = step_verdict(3, "12.4", tail, RankRecords({0: 3}, 1), expected_ranks=1)
    assert verdict.state == "FAILED"
    assert verdict.reason == "exit code 3 (step 12.4 FAILED: node1: task 0: Exited with exit code 3)"
    tail = NODE_FAILURE_TAIL + NODE_FAILURE_BANNER + "srun: error: fnode1: task 0: Terminated\n"
    verdict = step_verdict(143, None, tail, RankRecords(), expected_ranks=2)
    assert verdict.state == "NODE_FAIL"
    assert verdict.reason.startswith("exit code 143 (step 1000005.0 NODE_FAIL: node failure on fnode2; ")
    verdict = step_verdict(1, None, "srun: error: Unable to create step for job 12: Invalid job id", None, 1)
    assert verdict.reason.startswith("exit code 1 (no step started: Unable to create step")


def test_a_step_sflow_stopped_is_cancelled() -> None:
    assert step_verdict(-15, "3.1", "", RankRecords(), 1, stopping=True).state == "CANCELLED"


def test_rank_records_are_read_from_their_directory(tmp_path: Path) -> None:
    assert read_rank_records(tmp_path / "absent") is None
    (tmp_path / "0").write_text("0 3\n")
    (tmp_path / "2").write_text("1 3\n")
    (tmp_path / "1").write_text("")  # killed while writing
    (tmp_path / "stray").write_text("9")
    records = read_rank_records(tmp_path)
    assert records == RankRecords({0: 0, 2: 1}, ntasks=3)
    assert records.unfinished(expected=1) == [1]


def _run_recorder(tmp_path: Path, script: str, rank: int, ntasks: int) -> subprocess.CompletedProcess[str]:
    """The step's wrapper as one rank runs it (bash -c RECORDER <script>), with Slurm's variables."""
    path = tmp_path / "task.sh"
    path.write_text(script)
    step_file = tmp_path / "task.log.step"
    (tmp_path / "task.log.step.ranks").mkdir(exist_ok=True)
    env = {
        **os.environ,
        STEP_FILE_ENV: str(step_file),
        "SLURM_PROCID": str(rank),
        "SLURM_STEP_NUM_TASKS": str(ntasks),
        "SLURM_JOB_ID": "12",
        "SLURM_STEP_ID": "3",
    }
    return subprocess.run(["bash", "-c", STEP_RECORDER, str(path)], env=env, capture_output=True, text=True)


def test_the_wrapper_records_the_step_and_each_ranks_status(tmp_path: Path) -> None:
    done = _run_recorder(tmp_path, "echo hello; exit 3\n", rank=0, ntasks=2)
    assert done.returncode == 3 and done.stdout == "hello\n"
    assert (tmp_path / "task.log.step").read_text() == "12.3\n"
    _run_recorder(tmp_path, "exit 0\n", rank=1, ntasks=2)
    assert read_rank_records(tmp_path / "task.log.step.ranks") == RankRecords({0: 3, 1: 0}, ntasks=2)


def test_the_wrapper_ends_as_its_script_did_when_a_signal_killed_it(tmp_path: Path) -> None:
    done = _run_recorder(tmp_path, "kill -KILL $$\n", rank=1, ntasks=2)
    assert done.returncode == -signal.SIGKILL  # srun still reports "task 1: Killed"
    assert not (tmp_path / "task.log.step").exists()  # only rank 0 records the step id
    assert read_rank_records(tmp_path / "task.log.step.ranks") == RankRecords({1: 128 + signal.SIGKILL}, 2)


def test_a_signal_to_every_process_of_the_step_reaches_the_script_not_the_wrapper(tmp_path: Path) -> None:
    # scancel --signal=TERM makes slurmstepd signal every process of the step, the wrapper included:
    # the script's own handler decides how the rank ends
    up = tmp_path / "up"
    script = f"trap 'exit 5' TERM; touch {up}; while true; do sleep 0.05; done\n"
    (tmp_path / "task.sh").write_text(script)
    (tmp_path / "task.log.step.ranks").mkdir()
    env = {**os.environ, STEP_FILE_ENV: str(tmp_path / "task.log.step"), "SLURM_PROCID": "0"}
    proc = subprocess.Popen(
        ["bash", "-c", STEP_RECORDER, str(tmp_path / "task.sh")], env=env, start_new_session=True
    )
    try:
        while not up.exists() and proc.poll() is None:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 5
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert read_rank_records(tmp_path / "task.log.step.ranks") == RankRecords({0: 5}, None)


def test_a_rank_that_failed_while_srun_exited_0_fails_the_step() -> None:
    # the node went down and its slurmd stopped the rank: it recorded 143, srun still said 0
    verdict = step_verdict(0, "9.0", NODE_FAILURE_TAIL, RankRecords({0: 0, 1: 143}, 2), expected_ranks=2)
    assert not verdict.ok and verdict.state == "NODE_FAIL"
    assert verdict.reason.endswith(
        "(step 9.0 NODE_FAIL: node failure on fnode2; rank 1 of 2 ended with status 143)"
    )
    assert not step_verdict(0, "9.0", "", RankRecords({0: 0, 1: 1}, 2), expected_ranks=2).ok


OOM_TAIL = """allocating
hog.sh: line 3: 26501 Killed                  python3 hog.py
slurmstepd-fnode1: error: Detected 1 oom-kill event(s) in StepId=1000003.0. Some of your processes may have been killed by the cgroup out-of-memory handler.
srun: error: fnode1: task 0: Out Of Memory
srun: launch/slurm: _step_signal: Terminating StepId=1000003.0
"""


def test_a_step_the_memory_cgroup_killed_is_out_of_memory() -> None:
    verdict = step_verdict(1, "1000003.0", OOM_TAIL, RankRecords({0: 137}, ntasks=1), expected_ranks=1)
    assert not verdict.ok and verdict.state == "OUT_OF_MEMORY"
    assert verdict.reason == "exit code 1 (step 1000003.0 OUT_OF_MEMORY: fnode1: task 0: Out Of Memory)"
    srun_only = "srun: error: node2: tasks 0-1: Out Of Memory\n"
    assert step_verdict(1, "7.0", srun_only, None, expected_ranks=2).state == "OUT_OF_MEMORY"


def test_a_task_that_outlives_a_child_killed_for_memory_succeeds() -> None:
    tail = OOM_TAIL.split("srun:")[0]  # slurmstepd saw an OOM kill; the script still exited 0
    assert step_verdict(0, "1000003.0", tail, RankRecords({0: 0}, ntasks=1), expected_ranks=1).ok


def test_accounting_names_the_end_a_failed_step_really_had() -> None:
    failed = step_verdict(1, "12.0", "srun: error: node1: task 0: Killed\n", None, expected_ranks=1)
    assert failed.state == "FAILED"
    oom = recorded(failed, "12.0", "OUT_OF_MEMORY")
    assert oom.state == "OUT_OF_MEMORY" and not oom.ok
    assert oom.reason == "exit code 1 (step 12.0 OUT_OF_MEMORY: node1: task 0: Killed)"
    assert recorded(failed, "12.0", None) is failed and recorded(failed, "12.0", "FAILED") is failed
    ok = step_verdict(0, "12.0", "", RankRecords({0: 0}, ntasks=1), expected_ranks=1)
    assert recorded(ok, "12.0", "OUT_OF_MEMORY") is ok  # success is the step's own word
