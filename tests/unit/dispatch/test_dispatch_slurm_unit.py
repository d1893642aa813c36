"""The Slurm executor without Slurm: pure argv building, status parsing, and fake client tools.

Fake `sbatch`/`squeue`/`scontrol`/`scancel` scripts record their argv and answer from files,
to reach the edge cases a healthy cluster rarely shows (timeouts, vanished jobs, lost answers).
The real cluster is exercised by tests/integration/test_dispatch_slurm.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dispatch_helpers as h
import pytest

from sflow.dispatch import Call, DispatchError, DispatchJobError, get_executor
from sflow.dispatch.errors import DispatchConfigError, DispatchSlurmError
from sflow.dispatch.slurm import SlurmExecutor, SubmitFrame, SubmitPayload
from sflow.dispatch.slurm import argv as sargv
from sflow.slurm import commands as slurm_cli
from sflow.slurm import watcher as status

# -- pure functions --------------------------------------------------------------------------


def test_build_sbatch_argv_puts_resources_as_flags_and_nothing_secret() -> None:
    argv = sargv.build_sbatch_argv(
        ["sbatch", "--parsable"],
        name="sflow-train",
        output="/shared/run/logs/sflow-train-%j.log",
        command="exec /usr/bin/python3 -m sflow.dispatch.worker",
        resources={"partition": "debug", "time": 90, "mem": "2G", "gpus": 1, "extra_args": ["--qos=low"]},
        comment="sflow:run:c1",
    )
    assert argv == [
        "sbatch",
        "--parsable",
        "--job-name=sflow-train",
        "--output=/shared/run/logs/sflow-train-%j.log",
        "--comment=sflow:run:c1",
        "--partition=debug",
        "--time=90",
        "--mem=2G",
        "--gpus=1",
        "--qos=low",
        "--wrap=exec /usr/bin/python3 -m sflow.dispatch.worker",
    ]


def test_array_argv_and_log_paths() -> None:
    argv = sargv.build_sbatch_argv(
        ["sbatch"], name="n", output="/l/n-%A_%a.log", command="c", resources={}, array="0-199%8"
    )
    assert "--array=0-199%8" in argv
    assert sargv.array_spec(200) == "0-199" and sargv.array_spec(3, 2) == "0-2%2"
    assert sargv.log_path_for("/l/n-%A_%a.log", "12_7") == "/l/n-12_7.log"
    assert sargv.log_path_for("/l/n-%j.log", "12") == "/l/n-12.log"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1:00:00", "1:00:00"), (90, "90"), (1.5, "0:01:30"), ("90s", "0:01:30"), ("25h", "25:00:00")],
)
def test_format_time(value: Any, expected: str) -> None:
    assert sargv.format_time(value) == expected


@pytest.mark.parametrize("value", [0, -5, True, "", [1], "1.5", "soon"])
def test_format_time_rejects_nonsense(value: Any) -> None:
    with pytest.raises(DispatchConfigError):
        sargv.format_time(value)


def test_merge_resources_concatenates_extra_args_and_names_unknown_keys() -> None:
    merged = sargv.merge_resources(
        {"partition": "a", "extra_args": ["-x"]}, {"partition": "b", "extra_args": ["-y"]}
    )
    assert merged == {"partition": "b", "extra_args": ["-x", "-y"]}
    with pytest.raises(DispatchConfigError, match="unknown Slurm resource key 'gpu'"):
        sargv.merge_resources({}, {"gpu": 1})
    with pytest.raises(DispatchConfigError, match="list of strings"):
        sargv.merge_resources({}, {"extra_args": "--qos=low"})


def test_job_name_and_job_id_parsing() -> None:
    assert sargv.job_name("sflow", "my task/with spaces") == "sflow-my_task_with_spaces"
    assert sargv.job_name("sflow", "<lambda>") == "sflow-lambda"
    assert sargv.parse_job_id("1234\n") == "1234" and sargv.parse_job_id("77;cluster\n") == "77"
    with pytest.raises(ValueError):
        sargv.parse_job_id("sbatch: error\n")


def test_default_wrap_execs_the_same_interpreter() -> None:
    ex = SlurmExecutor()
    assert ex.wrap == f"exec {sys.executable} -m sflow.dispatch.worker"
    assert SlurmExecutor({"command": "module load py && python -m sflow.dispatch.worker"}).wrap.startswith(
        "module"
    )


def test_status_parsing() -> None:
    assert status.parse_squeue("12 RUNNING\n13_0 COMPLETED\n13_1 PENDING\n") == {
        "12": "RUNNING",
        "13_0": "COMPLETED",
        "13_1": "PENDING",
    }
    out = (
        "JobId=20 JobName=x JobState=CANCELLED Reason=None ExitCode=0:15\n"
        "JobId=31 ArrayJobId=30 ArrayTaskId=1 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125\n"
        "JobId=30 ArrayJobId=30 ArrayTaskId=2-4,6 JobState=PENDING Reason=Priority ExitCode=0:0\n"
    )
    found = status.parse_scontrol(out)
    assert found["20"].state == "CANCELLED" and found["20"].describe() == "killed by SIGTERM (ExitCode 0:15)"
    assert found["30_1"].state == "OUT_OF_MEMORY" and found["30_1"].terminal
    assert sorted(found) == ["20", "30_1", "30_2", "30_3", "30_4", "30_6"]
    assert (
        status.normalize_state("CANCELLED by 0") == "CANCELLED"
        and status.normalize_state("cancelled+") == "CANCELLED"
    )
    assert status.expand_indices("0-3%2") == [0, 1, 2, 3]


def test_transient_errors_are_recognised() -> None:
    assert slurm_cli.is_transient(
        "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
    )
    assert slurm_cli.is_transient("squeue: error: Unable to contact slurm controller (connect failure)")
    assert not slurm_cli.is_transient("sbatch: error: invalid partition specified: nope")


def test_unknown_slurm_option_is_refused_with_its_name() -> None:
    with pytest.raises(DispatchConfigError, match="unknown key 'partiton'"):
        get_executor("slurm", {"partiton": "debug"})


# -- fake Slurm tools --------------------------------------------------------------------------

FAKE = r"""#!{python}
import fcntl, json, os, sys
state = {state!r}
tool = os.path.basename(sys.argv[0])
lock = open(os.path.join(state, ".lock"), "w")
fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sbatch calls must not share a job id
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"tool": tool, "argv": sys.argv[1:], "env": {{k: v for k, v in os.environ.items() if k.startswith("SFLOW_")}}}}) + "\n")
def read(name, default=""):
    try:
        return open(os.path.join(state, name)).read()
    except FileNotFoundError:
        return default
fails = read(tool + ".fail")
if fails:
    count, _, message = fails.partition(" ")
    if int(count) > 0:
        open(os.path.join(state, tool + ".fail"), "w").write(f"{{int(count) - 1}} {{message}}")
        if read(tool + ".creates"):
            open(os.path.join(state, "adoptable"), "w").write(read(tool + ".creates"))
        print(message, file=sys.stderr)
        sys.exit(1)
if tool == "sbatch" and read("sbatch.hang"):
    import time
    time.sleep(float(read("sbatch.hang")))
if tool == "sbatch":
    n = int(read("next_id", "100"))
    open(os.path.join(state, "next_id"), "w").write(str(n + 1))
    print(n)
elif tool == "squeue":
    if "-n" in sys.argv:
        print(read("adoptable"), end="")
    elif read("squeue.invalid"):
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        sys.exit(1)
    else:
        print(read("squeue.out"), end="")
elif tool == "scontrol":
    out = read("scontrol.out")
    if not out:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        sys.exit(1)
    print(out, end="")
"""


class FakeSlurm:
    def __init__(self, root: Path) -> None:
        self.state = root / "state"
        self.state.mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("sbatch", "squeue", "scontrol", "scancel"):
            path = self.bin / tool
            path.write_text(FAKE.format(python=sys.executable, state=str(self.state)))
            path.chmod(0o755)

    def config(self, shared_dir: str, **extra: Any) -> dict[str, Any]:
        return {
            "sbatch": [str(self.bin / "sbatch"), "--parsable"],
            "squeue": [str(self.bin / "squeue")],
            "scontrol": [str(self.bin / "scontrol")],
            "scancel": [str(self.bin / "scancel")],
            "shared_dir": shared_dir,
            "listen_host": "127.0.0.1",
            "poll_interval": 0.1,
            "result_grace": 0.3,
            **extra,
        }

    def set(self, name: str, text: str) -> None:
        (self.state / name).write_text(text)

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [c for c in map(json.loads, lines) if tool is None or c["tool"] == tool]


@pytest.fixture
def fake(tmp_path: Path) -> FakeSlurm:
    return FakeSlurm(tmp_path)


def test_submit_many_becomes_one_array_per_chunk(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir, max_array_size=4)) as ex:
            handles = await ex.submit_many([Call(h.add, (i,), resources={"mem": "1G"}) for i in range(10)])
            handles += await ex.submit_many(
                [Call(h.add, (1,), resources={"mem": "2G"})]
            )  # alone: a plain job
            ids = [str(x.job_id).split("_") for x in handles[:10]]
            masters = [m for m, _ in ids]
            assert [int(i) for _, i in ids] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # chunks of 4, in order
            assert len(set(masters[:4])) == len(set(masters[4:8])) == len(set(masters[8:])) == 1
            assert len(set(masters)) == 3 and handles[-1].job_id == "103"
            arrays = [next(a for a in c["argv"] if a.startswith("--array")) for c in fake.calls("sbatch")[:3]]
            assert sorted(arrays) == ["--array=0-1", "--array=0-3", "--array=0-3"]
            assert not any(a.startswith("--array") for a in fake.calls("sbatch")[3]["argv"])
            first_array = masters[0]
            env = fake.calls("sbatch")[0]["env"]
            assert set(env) >= {"SFLOW_BACKEND_PAYLOAD", "SFLOW_BACKEND_SECRET"}
            assert not any(
                ex_secret in " ".join(c["argv"])
                for c in fake.calls()
                for ex_secret in [env["SFLOW_BACKEND_SECRET"]]
            )
            await ex.cancel_many(handles[:4])  # the whole first array: cancelled by its id
            assert fake.calls("scancel")[-1]["argv"] == [first_array]
        # aclose cancelled the rest in one scancel
        assert sorted(fake.calls("scancel")[-1]["argv"]) == sorted(
            {"100", "101", "102", "103"} - {first_array}
        )

    run_async(scenario())


def test_job_ending_without_result_is_a_clear_error(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            fake.set("squeue.out", "100 PENDING\n")
            handle = await ex.submit(Call(h.add, (1,), name="train"))
            while len(fake.calls("squeue")) < 2:  # polled, and seen pending
                await asyncio.sleep(0.05)
            assert not handle.done()
            fake.set("squeue.out", "100 OUT_OF_MEMORY\n")
            fake.set("scontrol.out", "JobId=100 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125\n")
            with pytest.raises(DispatchJobError) as info:
                await handle  # the poll's verdict (a lost job would be another error)
            err = info.value
            assert err.job_id == "100" and err.state == "OUT_OF_MEMORY"
            assert err.log_path and err.log_path.endswith("sflow-train-100.log")
            assert "exit code 0:125" in str(err) and "reason OutOfMemory" in str(err)

    run_async(scenario())


def test_job_squeue_forgot_is_looked_up_with_scontrol(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            fake.set("squeue.invalid", "1")
            fake.set("scontrol.out", "JobId=100 JobState=NODE_FAIL Reason=NodeDown ExitCode=0:0\n")
            with pytest.raises(DispatchJobError, match="NODE_FAIL"):
                await ex.run(h.add, 1)
            fake.set("scontrol.out", "")
            with pytest.raises(DispatchJobError, match="VANISHED"):
                await ex.run(h.add, 1)
            assert any(c["argv"][:3] == ["show", "job", "-o"] for c in fake.calls("scontrol"))

    run_async(scenario())


def test_one_squeue_per_poll_for_all_jobs(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor(
            "slurm", fake.config(shared_dir, poll_interval=0.2, min_array_items=100)
        ) as ex:
            fake.set("squeue.out", "".join(f"{100 + i} RUNNING\n" for i in range(8)))
            await ex.submit_many([Call(h.add, (i,)) for i in range(8)])
            before = len(fake.calls("squeue")) + 1  # (one may have started before the last sbatch)
            while len(fake.calls("squeue")) < before + 2:  # two polls once all eight are known
                await asyncio.sleep(0.05)
            every_job = ",".join(str(100 + i) for i in range(8))
            polls = fake.calls("squeue")[before:]
            assert all(p["argv"][-1] == every_job for p in polls)  # one query for all, never one per job

    run_async(scenario())


def test_squeue_outage_backs_off_and_keeps_the_jobs(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir, poll_interval=0.1)) as ex:
            fake.set(
                "squeue.fail", "1000 squeue: error: Unable to contact slurm controller (connect failure)"
            )
            handle = await ex.submit(Call(h.add, (1,)))
            await asyncio.sleep(1.6)
            assert len(fake.calls("squeue")) <= 5  # 0.2, 0.4, 0.8 s ... not 16 polls
            assert not handle.done()

    run_async(scenario())


def test_sbatch_is_retried_on_transient_errors(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        fake.set("sbatch.fail", "2 sbatch: error: Batch job submission failed: Socket timed out on send/recv")
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            handle = await ex.submit(Call(h.add, (1,)))
            assert handle.job_id == "100" and len(fake.calls("sbatch")) == 3

    run_async(scenario())


def test_sbatch_answer_lost_but_job_created_is_adopted_not_duplicated(
    fake: FakeSlurm, shared_dir: str, run_async
) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            ex_slurm: Any = ex
            fake.set("sbatch.fail", "1 sbatch: error: Socket timed out on send/recv operation")
            fake.set("sbatch.creates", f"555|sflow:{ex_slurm.run_id}:PLACEHOLDER\n")
            call = Call(h.add, (1,))
            # the comment tag names the first call id, known only once the handle exists: patch it in
            tagged = ex_slurm.tagged

            def tagged_and_adoptable(name: str, tag: str) -> Any:
                submission = tagged(name, tag)
                find = submission.find

                async def find_after_the_lost_answer() -> str | None:
                    fake.set("adoptable", f"555|{tag}\n")
                    return await find()

                submission.find = find_after_the_lost_answer
                return submission

            ex_slurm.tagged = tagged_and_adoptable
            handle = await ex.submit(call)
            assert handle.job_id == "555" and len(fake.calls("sbatch")) == 1

    run_async(scenario())


def test_cancelled_sbatch_whose_job_shows_up_late_is_still_scancelled(
    fake: FakeSlurm, shared_dir: str, run_async
) -> None:
    """The controller created the job after sbatch was killed: a later lookup still finds it."""

    async def scenario() -> None:
        fake.set("sbatch.hang", "30")
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            submitting = asyncio.create_task(ex.submit(Call(h.add, (1,))))
            while not fake.calls("sbatch"):
                await asyncio.sleep(0.02)
            comment = next(a for a in fake.calls("sbatch")[0]["argv"] if a.startswith("--comment="))
            submitting.cancel()
            while not fake.calls("squeue"):  # the first lookup finds nothing yet
                await asyncio.sleep(0.02)
            fake.set("adoptable", f"777|{comment.partition('=')[2]}\n")
            with pytest.raises(asyncio.CancelledError):
                await submitting
            assert [c["argv"] for c in fake.calls("scancel")] == [["777"]]
            assert len(fake.calls("squeue")) >= 2

    run_async(scenario())


def test_permanent_sbatch_error_fails_the_handle_with_sbatch_message(
    fake: FakeSlurm, shared_dir: str, run_async
) -> None:
    async def scenario() -> None:
        fake.set("sbatch.fail", "9 sbatch: error: invalid partition specified: nope")
        async with get_executor("slurm", fake.config(shared_dir)) as ex:
            handle = await ex.submit(Call(h.add, (1,)))
            with pytest.raises(DispatchSlurmError, match="invalid partition") as info:
                await handle
            assert isinstance(info.value, DispatchError) and isinstance(
                info.value, slurm_cli.SlurmCommandError
            )
            assert len(fake.calls("sbatch")) == 1

    run_async(scenario())


def test_timeout_sets_slurm_time_when_none_given(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", fake.config(shared_dir, partition="debug")) as ex:
            await ex.submit(Call(h.add, (1,), timeout=125))
            argv = fake.calls("sbatch")[0]["argv"]
            assert "--time=0:03:05" in argv and "--partition=debug" in argv  # timeout + a minute

    run_async(scenario())


def _start_worker_locally(payload: SubmitPayload) -> subprocess.Popen[bytes]:
    """What a site-specific submitter does, minus the scheduler: run the command with the env."""
    return subprocess.Popen(["/bin/sh", "-c", payload.command], env={**os.environ, **payload.env})


class LocalJob:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.job_id = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.proc.terminate()


def test_custom_submit_sync(shared_dir: str, run_async) -> None:
    seen: list[tuple[SubmitPayload, SubmitFrame, dict[str, Any]]] = []
    jobs: list[LocalJob] = []

    def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> LocalJob:
        seen.append((payload, frame, config))
        jobs.append(LocalJob(_start_worker_locally(payload)))
        return jobs[-1]

    async def scenario() -> None:
        config = {"submit": submit, "shared_dir": shared_dir, "listen_host": "127.0.0.1", "partition": "p1"}
        async with get_executor("slurm", config) as ex:
            assert await ex.run(h.add, 20, 22) == 42
            payload, frame, cfg = seen[0]
            assert frame.call.fn is h.add and cfg["partition"] == "p1"
            assert "--partition=p1" in payload.argv and payload.env["SFLOW_BACKEND_SECRET"]
            slow = await ex.submit(Call(h.sleep_then, (30,)))
            await asyncio.sleep(0.5)
        with pytest.raises(Exception, match="cancelled"):
            await slow
        assert jobs[-1].cancelled and jobs[-1].proc.wait(10) is not None

    run_async(scenario())


def test_custom_submit_without_job_id_dead_worker_is_reported(shared_dir: str, run_async) -> None:
    """Nobody can ask Slurm about a job without an id: silence after the start must fail the call."""
    jobs: list[LocalJob] = []

    def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> None:
        jobs.append(LocalJob(_start_worker_locally(payload)))  # returns None: no job id

    async def scenario() -> None:
        config = {
            "submit": submit,
            "shared_dir": shared_dir,
            "listen_host": "127.0.0.1",
            "heartbeat_interval": 0.2,
            "heartbeat_misses": 4,
        }
        async with get_executor("slurm", config) as ex:
            handle = await ex.submit(Call(h.sleep_then, (60,), name="orphan"))
            while handle.last_heartbeat is None:
                await asyncio.sleep(0.05)
            jobs[0].proc.kill()  # SIGKILL: no task_cancelled, no result, no job to poll
            with pytest.raises(DispatchJobError) as info:
                await handle
            message = str(info.value)
            assert info.value.state == "LOST" and info.value.job_id is None
            assert f"orphan ({handle.call_id})" in message and "no job id" in message
            assert "log: " in message and "%j" in message  # the log path suggested to the submitter

    run_async(scenario())


def test_custom_submit_without_job_id_and_no_callbacks_reads_the_result_file(
    shared_dir: str, run_async
) -> None:
    def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> None:
        _start_worker_locally(payload)

    async def scenario() -> None:
        config = {
            "submit": submit,
            "shared_dir": shared_dir,
            "listen_host": "127.0.0.1",
            "callback_url": "http://127.0.0.1:9/nobody-listens",
            "post_attempts": 1,
            "heartbeat_interval": 0.2,
        }
        async with get_executor("slurm", config) as ex:
            assert await ex.run(h.add, 40, 2) == 42
            with pytest.raises(h.CustomError):
                await ex.run(h.fail, "still delivered")

    run_async(scenario())


def test_custom_submit_async_returning_a_job_id(fake: FakeSlurm, shared_dir: str, run_async) -> None:
    procs: list[subprocess.Popen[bytes]] = []

    async def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> str:
        procs.append(_start_worker_locally(payload))
        return "4242"

    async def scenario() -> None:
        fake.set("squeue.out", "4242 RUNNING\n")
        async with get_executor("slurm", fake.config(shared_dir, submit=submit)) as ex:
            handle = await ex.submit(Call(h.async_add, (1, 2)))
            assert handle.job_id == "4242"
            assert await handle == 3
        assert not fake.calls("sbatch")

    run_async(scenario())


def test_submit_given_as_import_path(shared_dir: str) -> None:
    ex = get_executor("slurm", {"submit": "dispatch_helpers:add", "shared_dir": shared_dir})
    assert isinstance(ex, SlurmExecutor) and ex.options.submit is h.add
    with pytest.raises(DispatchConfigError, match="cannot import"):
        get_executor("slurm", {"submit": "nowhere.at_all:fn"})


def test_a_signal_that_ended_a_job_is_named() -> None:
    # a worker killed by a signal: Slurm says "ExitCode=0:6" (and a reason that does not help)
    assert status.JobStatus("7", "FAILED", "0:6", "JobLaunchFailure").describe() == (
        "killed by SIGABRT (ExitCode 0:6), reason JobLaunchFailure"
    )
    assert status.describe_exit_code("0:11") == "killed by SIGSEGV (ExitCode 0:11)"
    assert status.describe_exit_code("7:0") == "exit code 7:0"
    assert status.describe_exit_code("0:125") == "exit code 0:125"  # not a signal number
