"""The slurm dispatch executor against the real test cluster (scripts/dev-slurm).

Callables here are pickled *by value* (`register_pickle_by_value`), so jobs need not import
this test module. Each test starts its own executor; every job name starts with PREFIX,
which is how the leak checks find ours among other test runs' jobs.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import cloudpickle
import pytest

from sflow.dispatch import Call, DispatchCancelled, DispatchJobError, Executor, get_executor, protocol
from sflow.dispatch.slurm import SlurmExecutor, SubmitFrame, SubmitPayload

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SlurmCluster = Any  # the fixture's type lives in conftest.py (not importable)
PREFIX = f"sflow-it-dispatch-{os.getpid()}"  # this process's jobs only: other runs share the cluster


class Boom(Exception):
    """Raised remotely; must come back as this very type."""


def add(a: int, b: int = 0) -> int:
    return a + b


def explode(message: str) -> None:
    def deeper() -> None:
        raise Boom(message)

    deeper()


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def where() -> str:
    return socket.gethostname()


def _config(cluster: SlurmCluster, **extra: Any) -> dict[str, Any]:
    return {
        "partition": cluster.partition,
        "shared_dir": os.path.join(cluster.work_dir, "dispatch"),
        "listen_host": "127.0.0.1",
        "job_name_prefix": f"{PREFIX}-{uuid.uuid4().hex[:6]}",
        "poll_interval": 0.5,
        "heartbeat_interval": 1.0,
        "result_grace": 1.0,
        **extra,
    }


def slurm(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


async def wait_running(handle: Any, limit: float = 30) -> None:
    """Until the worker itself has reported in (squeue's RUNNING comes before Python is up)."""
    deadline = time.monotonic() + limit
    while handle.state != "running" or handle.job_id is None or handle.last_heartbeat is None:
        assert time.monotonic() < deadline, f"{handle} never started"
        await asyncio.sleep(0.1)


def test_round_trip_and_remote_exception(slurm_cluster: SlurmCluster, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            handle = await ex.submit(Call(add, (40,), {"b": 2}, name="add"))
            assert await handle == 42
            assert handle.host in slurm_cluster.nodes and handle.job_id and handle.job_id.isdigit()
            with pytest.raises(Boom, match="kaput") as info:
                await ex.run(explode, "kaput")
            notes = "\n".join(info.value.__notes__)
            line = explode.__code__.co_firstlineno + 2  # shipped by value, yet the user's own file and line
            assert f'File "{__file__}", line {line}, in deeper\n    raise Boom(message)' in notes
            assert "job " in notes

    run_async(scenario, limit=90)


def test_two_hundred_items_are_one_job_array(slurm_cluster: SlurmCluster, run_async) -> None:
    async def scenario() -> None:
        ex: Any
        async with get_executor("slurm", _config(slurm_cluster, heartbeat_interval=30)) as ex:
            handles = await ex.submit_many([Call(add, (i,), {"b": 1000}) for i in range(200)])
            assert len(ex.submitted) == 1  # one sbatch, one array
            array_id = ex.submitted[0]
            assert [h.job_id for h in handles] == [f"{array_id}_{i}" for i in range(200)]
            info = slurm("scontrol", "show", "job", "-o", array_id)
            assert f"ArrayJobId={array_id}" in info
            assert await asyncio.gather(*(h.result() for h in handles)) == [1000 + i for i in range(200)]
        deadline = time.monotonic() + 15  # the last workers are exiting right after their callbacks
        while True:
            lines = slurm("squeue", "-h", "-r", "-t", "all", "-j", array_id, "-o", "%i %T").split()
            if set(lines[1::2]) == {"COMPLETED"} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert len(lines) == 400 and set(lines[1::2]) == {"COMPLETED"}

    run_async(scenario, limit=300)  # a hang guard: 200 worker starts take ~25 s on an idle 2-core machine


def test_job_cancelled_from_outside_is_reported_with_its_state(
    slurm_cluster: SlurmCluster, run_async
) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            handle = await ex.submit(Call(nap, (120,), name="victim"))
            await wait_running(handle)
            first = handle.last_heartbeat
            deadline = time.monotonic() + 30
            while handle.last_heartbeat == first:  # heartbeats keep coming while it runs
                assert time.monotonic() < deadline, "no heartbeat after the first event"
                await asyncio.sleep(0.1)
            slurm("scancel", str(handle.job_id))
            with pytest.raises(DispatchJobError) as info:
                await handle
            err = info.value
            assert err.state == "CANCELLED" and err.job_id == handle.job_id
            assert f"job {handle.job_id}" in str(err) and "worker received SIGTERM" in str(err)
            assert err.log_path and os.path.exists(err.log_path)

    run_async(scenario, limit=90)


def test_terminating_signal_like_a_time_limit_is_reported(slurm_cluster: SlurmCluster, run_async) -> None:
    """What the worker sees at a time limit (SIGTERM, then the job ends), in seconds not minutes."""

    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            handle = await ex.submit(Call(nap, (120,), name="sigterm"))
            await wait_running(handle)
            slurm("scancel", "--signal=TERM", "--full", str(handle.job_id))
            with pytest.raises(DispatchJobError) as info:
                await handle
            assert info.value.state == "FAILED" and "worker received SIGTERM" in str(info.value)

    run_async(scenario, limit=90)


def test_real_time_limit_becomes_timeout_error(slurm_cluster: SlurmCluster, run_async) -> None:
    """Slurm rounds a limit below a minute up to one: this test takes 60-90 s."""

    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            handle = await ex.submit(Call(nap, (300,), name="too-slow", resources={"time": "0:01"}))
            with pytest.raises(DispatchJobError) as info:
                await handle
            assert info.value.state == "TIMEOUT" and "worker received SIGTERM" in str(info.value)

    run_async(scenario, limit=150)


def test_a_bare_number_of_time_is_minutes_as_for_slurm_itself(slurm_cluster: SlurmCluster, run_async) -> None:
    """`time: 2` is two minutes, as `sbatch --time=2` and a workflow's slurm backend read it."""

    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster, time=2)) as ex:
            plain = await ex.submit(Call(add, (1,), name="minutes"))
            units = await ex.submit(Call(add, (1,), name="units", resources={"time": "3m"}))
            assert await plain == 1 and await units == 1
            for handle, limit in ((plain, "00:02:00"), (units, "00:03:00")):
                assert f"TimeLimit={limit}" in slurm("scontrol", "show", "job", "-o", str(handle.job_id))

    run_async(scenario, limit=90)


def test_timeout_counts_from_the_start_not_the_queue(slurm_cluster: SlurmCluster, run_async) -> None:
    """An array throttled to one element at a time: the last one waits in the queue (PENDING)
    longer than the timeout, and still succeeds because its timeout starts when it runs."""

    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster, max_concurrent=1)) as ex:
            start = time.monotonic()
            handles = await ex.submit_many([Call(nap, (1.5,), name="queued", timeout=4) for _ in range(3)])
            assert len(ex.submitted) == 1  # one array, %1
            assert await asyncio.gather(*(h.result() for h in handles)) == ["rested"] * 3
            assert time.monotonic() - start > 4.5  # a timer started at submission would have fired
            assert all(h.started_at is not None for h in handles)

    run_async(scenario, limit=60)


def test_process_killed_hard_is_reported_with_exit_code(slurm_cluster: SlurmCluster, run_async) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            with pytest.raises(DispatchJobError) as info:
                await ex.run(os._exit, 7)
            err = info.value
            assert err.state == "FAILED" and "exit code 7:0" in str(err)

    run_async(scenario, limit=90)


def test_a_worker_killed_by_a_signal_is_reported_with_the_signal_s_name(
    slurm_cluster: SlurmCluster, run_async
) -> None:
    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            with pytest.raises(DispatchJobError) as info:
                await ex.run(os.abort)
            assert "killed by SIGABRT (ExitCode 0:6)" in str(info.value)

    run_async(scenario, limit=90)


def test_lost_callbacks_are_recovered_from_result_files(slurm_cluster: SlurmCluster, run_async) -> None:
    async def scenario() -> None:
        config = _config(slurm_cluster, callback_url="http://127.0.0.1:9/nobody-listens", post_attempts=1)
        async with get_executor("slurm", config) as ex:
            assert await ex.map(add, [1, 2, 3], kwargs={"b": 10}) == [11, 12, 13]
            with pytest.raises(Boom):
                await ex.run(explode, "still delivered")

    run_async(scenario, limit=90)


def test_an_unreachable_callback_url_is_said_once_and_jobs_fall_back_at_once(
    slurm_cluster: SlurmCluster, run_async, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers stop trying a URL that never answered (no ~16 s of back-off per job); one warning."""
    url = "http://127.0.0.1:9/nobody-listens"

    async def scenario() -> list[str]:
        async with get_executor("slurm", _config(slurm_cluster, callback_url=url)) as ex:
            handles = await ex.submit_many([Call(add, (i,), {"b": 10}) for i in range(3)])
            assert [await handle for handle in handles] == [10, 11, 12]
            return [Path(handle.log_path or "").read_text() for handle in handles]

    with caplog.at_level("WARNING", logger="sflow.dispatch"):
        logs = run_async(scenario, limit=90)
    warned = [r.getMessage() for r in caplog.records if "no event from its workers" in r.getMessage()]
    assert len(warned) == 1 and url in warned[0]
    for text in logs:
        assert text.count(f"callback URL {url} is unreachable") == 1
        assert "could not deliver" not in text


def test_with_failing_callbacks_the_result_arrives_while_the_job_still_runs(
    slurm_cluster: SlurmCluster, run_async, caplog: pytest.LogCaptureFixture
) -> None:
    """The job goes on after its worker (a sleep): the result must come from the watched result file."""
    url = "http://127.0.0.1:9/nobody-listens"
    command = f"{shlex.quote(sys.executable)} -m sflow.dispatch.worker; sleep 300"

    async def scenario() -> str:
        async with get_executor("slurm", _config(slurm_cluster, callback_url=url, command=command)) as ex:
            handle = await ex.submit(Call(add, (1,), {"b": 2}))
            try:
                assert await handle == 3
                assert handle.job_id is not None
                state = slurm("squeue", "-h", "-j", handle.job_id, "-o", "%T").strip()
                return state
            finally:
                if handle.job_id:
                    slurm("scancel", handle.job_id)

    with caplog.at_level("WARNING", logger="sflow.dispatch"):
        state = run_async(scenario, limit=240)
    assert state in ("RUNNING", "COMPLETING")  # delivered before the job ended
    warned = [r.getMessage() for r in caplog.records if "callbacks are failing" in r.getMessage()]
    assert len(warned) == 1 and url in warned[0] and "watched while the jobs run" in warned[0]


def test_forged_callback_is_refused(slurm_cluster: SlurmCluster, run_async) -> None:
    async def scenario() -> None:
        ex: Any
        async with get_executor("slurm", _config(slurm_cluster)) as ex:
            handle = await ex.submit(Call(nap, (3,)))
            forged = protocol.Event(
                protocol.TASK_RESULT, ex.run_id, handle.call_id, data={"value": "gASVBQAAAAAAAACMAWWULg=="}
            )
            body = forged.to_body()
            async with aiohttp.ClientSession() as session:
                headers = {protocol.RUN_HEADER: ex.run_id, protocol.SIGNATURE_HEADER: "sha256=" + "0" * 64}
                async with session.post(ex.callback_url, data=body, headers=headers) as response:
                    assert response.status == 403
                headers = protocol.headers_for(ex.run_id, handle.call_id, "guessed-secret", body)
                async with session.post(ex.callback_url, data=body, headers=headers) as response:
                    assert response.status == 403
            assert await handle == "rested"  # the genuine result, not the forged one
            assert ex._server.refused == 2

    run_async(scenario, limit=90)


def test_custom_submit_callable(slurm_cluster: SlurmCluster, run_async) -> None:
    seen: list[list[str]] = []

    async def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> str:
        argv = [*payload.argv[:-1], "--nodelist=node3", payload.argv[-1]]  # a site-specific flag
        seen.append(argv)
        proc = await asyncio.create_subprocess_exec(
            *argv, env={**os.environ, **payload.env}, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return out.decode().strip()

    def submit_sync(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> str:
        argv = [*payload.argv[:-1], "--nodelist=node2", payload.argv[-1]]
        out = subprocess.run(
            argv, env={**os.environ, **payload.env}, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    async def scenario() -> None:
        async with get_executor("slurm", _config(slurm_cluster, submit=submit)) as ex:
            assert await ex.run(where) == "node3"
        async with get_executor("slurm", _config(slurm_cluster, submit=submit_sync)) as ex:
            assert await ex.run(where) == "node2"
        assert "--partition=debug" in seen[0]

    run_async(scenario, limit=90)


def _worker_pid(job_id: str) -> int:
    """The worker process of a job (the test cluster's nodes all run on this machine)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sflow.dispatch.worker" in cmdline and f"SLURM_JOB_ID={job_id}".encode() in environ:
            return int(entry)
    raise AssertionError(f"no worker process of job {job_id} on this machine")


def test_custom_submit_without_job_id_whose_worker_dies_silently(
    slurm_cluster: SlurmCluster, run_async
) -> None:
    """A submitter that keeps the job id to itself; the job is then SIGKILLed (no last event).

    Nothing can poll a job sflow does not know: the heartbeat watchdog must fail the call.
    """
    job_ids: list[str] = []

    async def submit(payload: SubmitPayload, frame: SubmitFrame, config: dict[str, Any]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *payload.argv, env={**os.environ, **payload.env}, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        job_ids.append(out.decode().strip().split(";")[0])

    async def scenario() -> None:
        config = _config(slurm_cluster, submit=submit, heartbeat_interval=0.5, heartbeat_misses=4)
        async with get_executor("slurm", config) as ex:
            handle = await ex.submit(Call(nap, (120,), name="silent"))
            assert handle.job_id is None and job_ids
            deadline = time.monotonic() + 30
            while handle.last_heartbeat is None:
                assert time.monotonic() < deadline, "the worker never reported"
                await asyncio.sleep(0.1)
            os.kill(_worker_pid(job_ids[0]), signal.SIGKILL)  # scancel would SIGTERM first
            with pytest.raises(DispatchJobError) as info:  # nothing but the watchdog can end this wait
                await handle
            err = info.value
            assert err.state == "LOST" and err.job_id is None
            assert f"silent ({handle.call_id})" in str(err) and "no job id" in str(err)
            assert "log: " in str(err)

    run_async(scenario, limit=60)


def test_aclose_cancels_queued_and_running_jobs(
    slurm_cluster: SlurmCluster, squeue_ours: Any, run_async
) -> None:
    config = _config(slurm_cluster, cpus_per_task=4)  # one job fills a node: some must queue

    async def scenario() -> list[Any]:
        ex: Executor = get_executor("slurm", config)
        await ex.start()
        handles = [await ex.submit(Call(nap, (120,))) for _ in range(3)]
        handles += await ex.submit_many([Call(nap, (120,)) for _ in range(4)])  # an array
        assert len({h.job_id for h in handles}) == 7
        await wait_running(handles[0])
        assert squeue_ours(config["job_name_prefix"])
        await ex.aclose()
        return handles

    handles = run_async(scenario, limit=90)
    for handle in handles:
        assert isinstance(handle.exception(), DispatchCancelled)
    deadline = time.monotonic() + 20
    while (left := squeue_ours(config["job_name_prefix"])) and time.monotonic() < deadline:
        time.sleep(0.5)  # scancelled jobs pass through COMPLETING for up to KillWait
    assert left == []
    for handle in handles:
        state = re.search(r"JobState=(\S+)", slurm("scontrol", "show", "job", "-o", str(handle.job_id)))
        assert state and state.group(1) == "CANCELLED", (handle.job_id, state)


def _slow_answer_sbatch(tmp: Path) -> tuple[list[str], Path]:
    """An sbatch that submits at once but answers 10 s later: a cancel lands in between."""
    marker = tmp / "submitted"
    wrapper = tmp / "sbatch"
    wrapper.write_text(  # sleep's output goes elsewhere: killing the wrapper closes sflow's pipes
        f'#!/bin/sh\nout=$(sbatch "$@") || exit $?\ntouch {marker}\nsleep 10 >/dev/null 2>&1\necho "$out"\n'
    )
    wrapper.chmod(0o755)
    return [str(wrapper), "--parsable"], marker


async def _until(path: Path, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)


def _no_job_left(prefix: str, squeue_ours: Any) -> list[Any]:
    deadline = time.monotonic() + 10
    while (left := squeue_ours(prefix)) and time.monotonic() < deadline:
        time.sleep(0.25)  # scancelled jobs pass through COMPLETING
    for job in left:  # do not leave a leak behind for the next tests
        subprocess.run(["scancel", job.job_id.split("_")[0]], check=False, timeout=60)
    return left


def test_submission_cancelled_while_sbatch_runs_leaves_no_job(
    slurm_cluster: SlurmCluster, squeue_ours: Any, tmp_path: Path, run_async
) -> None:
    """Ctrl-C during submit_many: sbatch is killed after the controller created the array."""
    sbatch, marker = _slow_answer_sbatch(tmp_path)
    config = _config(slurm_cluster, sbatch=sbatch)

    async def scenario() -> None:
        async with get_executor("slurm", config) as ex:
            calls = [Call(nap, (60,)) for _ in range(3)]
            submitting: asyncio.Task[Any] = asyncio.create_task(ex.submit_many(calls))
            await _until(marker)
            assert squeue_ours(config["job_name_prefix"])  # the array exists, its id unknown to us
            submitting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await submitting

    run_async(scenario, limit=30)
    assert _no_job_left(config["job_name_prefix"], squeue_ours) == []


def test_aclose_while_a_throttled_submission_waits_for_sbatch_leaves_no_job(
    slurm_cluster: SlurmCluster, squeue_ours: Any, tmp_path: Path, run_async
) -> None:
    sbatch, marker = _slow_answer_sbatch(tmp_path)
    config = _config(slurm_cluster, sbatch=sbatch, max_concurrent=1)

    async def scenario() -> Any:
        ex: Executor = get_executor("slurm", config)
        await ex.start()
        handle = await ex.submit(Call(nap, (60,)))  # returns at once; sbatch runs in the background
        await _until(marker)
        assert squeue_ours(config["job_name_prefix"])
        await ex.aclose()
        return handle

    handle = run_async(scenario, limit=30)
    assert isinstance(handle.exception(), DispatchCancelled)
    assert _no_job_left(config["job_name_prefix"], squeue_ours) == []


def test_executor_is_the_slurm_one() -> None:
    assert isinstance(get_executor("slurm"), SlurmExecutor)
