"""The local, process and subprocess executors behind the one `Executor` interface."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import dispatch_helpers as h
import pytest

from sflow.dispatch import Call, DispatchCancelled, DispatchJobError, DispatchTimeout, Executor, get_executor
from sflow.dispatch.errors import DispatchConfigError


def make(name: str, shared_dir: str, **config: Any) -> Executor:
    if name == "subprocess":
        config = {"shared_dir": shared_dir, "listen_host": "127.0.0.1", "result_grace": 1.0, **config}
    return get_executor(name, config)


ALL = ["local", "process", "subprocess"]


@pytest.mark.parametrize("name", ALL)
def test_round_trip_sync_and_async(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make(name, shared_dir) as ex:
            assert await ex.run(h.add, 1, 2) == 3
            assert await ex.run(h.async_add, 2, b=5) == 7
            handle = await ex.submit(Call(h.add, (10,), {"b": 1}, name="ten"))
            assert await handle == 11 and handle.state == "done" and handle.name == "ten"

    run_async(scenario)


@pytest.mark.parametrize("name", ALL)
def test_exception_keeps_its_type(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make(name, shared_dir) as ex:
            with pytest.raises(h.CustomError) as info:
                await ex.run(h.fail, "broken")
            assert info.value.code == 42
            if name != "local":  # crossed a process boundary: the remote traceback is attached
                assert "in fail" in info.value.__notes__[0]
            with pytest.raises(KeyError):
                await ex.run(h.nested_fail)

    run_async(scenario)


@pytest.mark.parametrize("name", ["process", "subprocess"])
def test_a_remote_traceback_shows_the_callers_file_line_and_source(
    name: str, shared_dir: str, run_async
) -> None:
    def explode(message: str) -> None:  # a local function: it travels by value
        raise KeyError(message)

    async def scenario() -> None:
        async with make(name, shared_dir) as ex:
            with pytest.raises(KeyError) as info:
                await ex.run(explode, "kaput")
        line = explode.__code__.co_firstlineno + 1
        where = f'File "{__file__}", line {line}, in explode\n    raise KeyError(message)'
        assert where in info.value.__notes__[0]

    run_async(scenario)


@pytest.mark.parametrize("name", ALL)
def test_map_keeps_order(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make(name, shared_dir) as ex:
            assert await ex.map(h.add, range(6), kwargs={"b": 100}) == list(range(100, 106))

    run_async(scenario)


@pytest.mark.parametrize("name", ALL)
def test_timeout_cancels_and_raises_dispatch_timeout(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make(name, shared_dir) as ex:
            handle = await ex.submit(Call(h.async_sleep_then, (600,), timeout=1.0))
            with pytest.raises(DispatchTimeout):  # not the scenario's own limit
                await handle
            assert isinstance(handle.exception(), TimeoutError)

    run_async(scenario)


@pytest.mark.parametrize("name", ALL)
def test_timeout_counts_from_the_start_not_from_the_wait_for_a_slot(
    name: str, shared_dir: str, tmp_path: Path, run_async
) -> None:
    """One slot, held by a call until the test lets it go: the calls queued behind it wait
    longer than their timeout, and still succeed, because it counts from their own start."""
    go = tmp_path / "go"

    async def scenario() -> None:
        async with make(name, shared_dir, max_concurrent=1) as ex:
            holder = await ex.submit(Call(h.once_file_exists, (str(go), "held")))
            loop = asyncio.get_running_loop()
            submitted = loop.time()
            queued = await ex.submit_many([Call(h.add, (i,), timeout=2.0) for i in range(2)])
            await asyncio.sleep(submitted + 2.5 - loop.time())  # a timer from submission has fired
            assert holder.started_at is not None and not any(q.done() for q in queued)
            go.touch()
            assert await holder == "held"
            assert [await q for q in queued] == [0, 1]
            assert all(q.started_at is not None and q.started_at >= holder.started_at for q in queued)

    run_async(scenario)


@pytest.mark.parametrize("name", ["local", "subprocess"])
def test_timeout_after_the_start_still_fires_and_says_so(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make(name, shared_dir, max_concurrent=1) as ex:
            first = await ex.submit(Call(h.sleep_then, (1.0, "ok")))
            slow = await ex.submit(Call(h.async_sleep_then, (30,), name="slow", timeout=1.0))
            assert await first == "ok"
            with pytest.raises(DispatchTimeout, match=r"slow .* did not finish within 1 s of starting"):
                await slow

    run_async(scenario)


def test_queue_timeout_bounds_only_the_wait_before_the_start(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make("subprocess", shared_dir, max_concurrent=1, queue_timeout=1.0) as ex:
            busy = await ex.submit(Call(h.sleep_then, (3.0, "done")))
            waiting = await ex.submit(Call(h.add, (1,), name="waiting"))
            with pytest.raises(
                DispatchTimeout, match=r"waiting .* did not start within 1 s \(queue_timeout\)"
            ):
                await waiting
            assert await busy == "done"  # started in time: the bound no longer applies
        with pytest.raises(DispatchConfigError, match="queue_timeout"):
            make("subprocess", shared_dir, queue_timeout=0)

    run_async(scenario)


@pytest.mark.parametrize("name", ALL)
def test_cancel_and_aclose_leave_nothing_running(name: str, shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        ex = make(name, shared_dir)
        await ex.start()
        first = await ex.submit(Call(h.async_sleep_then, (30,)))
        second = await ex.submit(Call(h.async_sleep_then, (30,)))
        await asyncio.sleep(0.5)
        await first.cancel()
        with pytest.raises(DispatchCancelled):
            await first
        await ex.aclose()
        with pytest.raises(DispatchCancelled):
            await second
        assert ex.live_handles() == []
        await first.cancel()  # cancelling a finished handle is a no-op
        with pytest.raises(Exception, match="closed"):
            await ex.submit(Call(h.add, (1,)))

    run_async(scenario)


def test_subprocess_cancel_kills_the_worker_process(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make("subprocess", shared_dir) as ex:
            handle = await ex.submit(Call(h.sleep_then, (30,)))
            while handle.job_id is None:
                await asyncio.sleep(0.05)
            pid = int(handle.job_id.split(":")[1])
            await handle.cancel()
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                await asyncio.sleep(0.1)
            pytest.fail(f"worker {pid} survived its cancellation")

    run_async(scenario)


def test_a_worker_that_stops_heartbeating_fails_its_call(shared_dir: str, run_async) -> None:
    """A frozen worker (SIGSTOP: alive, silent) is declared lost after heartbeat_misses intervals."""

    async def scenario() -> None:
        async with make("subprocess", shared_dir, heartbeat_interval=0.2, heartbeat_misses=3) as ex:
            handle = await ex.submit(Call(h.sleep_then, (60,), name="frozen"))
            while handle.last_heartbeat is None:  # heard from: its events reach us
                await asyncio.sleep(0.05)
            assert handle.job_id is not None
            pid = int(handle.job_id.split(":")[1])
            os.kill(pid, signal.SIGSTOP)
            with pytest.raises(DispatchJobError) as info:  # a stopped worker never ends by itself
                await handle
            err = info.value
            assert err.state == "LOST" and err.job_id == handle.job_id and err.log_path == handle.log_path
            assert f"frozen ({handle.call_id})" in str(err) and "no heartbeat" in str(err)
            assert f"log: {handle.log_path}" in str(err)
            for _ in range(100):  # and its work was stopped (SIGKILL reaches a stopped process)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"worker {pid} still alive")

    run_async(scenario)
    with pytest.raises(DispatchConfigError, match="heartbeat_misses"):
        make("subprocess", shared_dir, heartbeat_misses=1)


def test_subprocess_worker_dying_without_callback_is_a_job_error(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make("subprocess", shared_dir) as ex:
            handle = await ex.submit(Call(h.hard_exit, (9,)))
            with pytest.raises(DispatchJobError) as info:
                await handle
            err = info.value
            assert err.state == "FAILED" and "exit code 9" in str(err) and err.log_path
            assert "without delivering a result" in str(err)

    run_async(scenario)


def test_subprocess_lost_callback_is_recovered_from_the_result_file(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        config = {"callback_url": "http://127.0.0.1:9/unreachable", "post_attempts": 1}
        async with make("subprocess", shared_dir, **config) as ex:
            assert await ex.run(h.add, 40, 2) == 42
            with pytest.raises(h.CustomError):
                await ex.run(h.fail, "still typed")

    run_async(scenario)


def test_an_unreachable_callback_url_is_said_once_and_workers_fall_back_at_once(
    shared_dir: str, run_async, caplog: pytest.LogCaptureFixture
) -> None:
    """No retries against a URL that never answered (they cost ~16 s per call); one warning."""
    url = "http://127.0.0.1:9/sflow/events"  # the discard port: nothing listens there

    async def scenario() -> list[str]:
        async with make("subprocess", shared_dir, callback_url=url) as ex:
            handles = await ex.submit_many([Call(h.add, (i, 1)) for i in range(3)])
            assert [await handle for handle in handles] == [1, 2, 3]
            return [Path(handle.log_path or "").read_text() for handle in handles]

    with caplog.at_level("WARNING", logger="sflow.dispatch"):
        logs = run_async(scenario)
    warned = [r.getMessage() for r in caplog.records if "no event from its workers" in r.getMessage()]
    assert len(warned) == 1 and url in warned[0] and shared_dir in warned[0]
    for text in logs:
        assert text.count(f"callback URL {url} is unreachable") == 1
        assert "could not deliver" not in text  # no back-off retries before the result file


def test_subprocess_large_result_travels_through_the_file(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        async with make("subprocess", shared_dir) as ex:
            ex_any: Any = ex
            ex_any.options.post_attempts = 2
            value = await ex.run(h.big_value, 3_000_000)
            assert value == b"x" * 3_000_000

    run_async(scenario)


def test_local_runs_sync_functions_off_the_event_loop(shared_dir: str, run_async) -> None:
    """Four blocking calls that end only when the event loop releases them, once all four run."""
    running = threading.Semaphore(0)
    release = threading.Event()

    def block(i: int) -> int:
        running.release()
        assert release.wait(60), "never released"
        return i

    async def scenario() -> None:
        async with make("local", shared_dir) as ex:
            handles = await ex.submit_many([Call(block, (i,)) for i in range(4)])
            for _ in range(4):  # the loop keeps turning while they block, so this wait can end
                while not running.acquire(blocking=False):
                    await asyncio.sleep(0.01)
            release.set()
            assert [await x for x in handles] == [0, 1, 2, 3]

    run_async(scenario)


def test_local_max_concurrent_bounds_parallelism(shared_dir: str, run_async) -> None:
    async def scenario() -> None:
        running: list[int] = []
        peak = 0

        async def one(x: int) -> int:
            nonlocal peak
            running.append(x)
            peak = max(peak, len(running))
            await asyncio.sleep(0.05)  # a moment in which a second call could start beside it
            running.remove(x)
            return x

        async with make("local", shared_dir, max_concurrent=1) as ex:
            assert await ex.map(one, [1, 2, 3]) == [1, 2, 3]
        assert peak == 1

    run_async(scenario)


def test_unknown_config_key_names_the_key() -> None:
    with pytest.raises(DispatchConfigError, match="unknown key 'max_worker'"):
        get_executor("local", {"max_worker": 3})
    with pytest.raises(DispatchConfigError, match="'poll_interval' must be float"):
        get_executor("slurm", {"poll_interval": "fast"})
    with pytest.raises(DispatchConfigError, match="unknown executor 'nope'"):
        get_executor("nope")


def test_custom_executor_registered_by_name(run_async) -> None:
    from sflow.dispatch import Handle, register_executor

    class Echo(Executor):
        name = "echo"

        async def _launch(self, handles: list[Handle]) -> None:
            for handle in handles:
                handle.set_result((handle.call.args, dict(handle.call.kwargs)))

        async def _terminate(self, handles: list[Handle]) -> None:
            pass

    register_executor("echo", lambda config: Echo())

    async def scenario() -> None:
        async with get_executor("echo") as ex:
            assert await ex.run(h.add, 1, b=2) == ((1,), {"b": 2})
            with pytest.raises(DispatchConfigError, match="unknown resource key 'gpu'"):
                await ex.submit(Call(h.add, resources={"gpu": 1}))

    run_async(scenario)


def test_process_executor_without_cloudpickle_names_the_package_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio; sys.modules['cloudpickle'] = None; sys.modules['aiohttp'] = None\n"
        "import sflow.dispatch as d\n"
        "ex = d.get_executor('local')\n"
        "try:\n"
        "    asyncio.run(d.get_executor('process').start())\n"
        "except ImportError as e:\n"
        "    print('HINT:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "pip install cloudpickle" in proc.stdout, proc.stdout + proc.stderr
