"""Failures: retries with back-off, timeouts, the original exception, cancellation, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

import pytest

import sflow.flow
from sflow.dispatch.config import config as configure_dispatch
from sflow.engine import State
from sflow.flow import TaskTimeout


class DataError(Exception):
    pass


def test_retries_with_backoff(tmp_path: Path) -> None:
    """The task's policy reaches the engine (whose waits the engine tests time on a virtual clock)."""
    calls = []
    with sflow.flow("retry", output_dir=tmp_path) as f:

        @f.task(retries={"count": 3, "interval": 0.1, "backoff": 2})
        def flaky():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("try again")
            return "ok"

    assert f.result.flaky == "ok"
    assert f.run_result is not None and f.run_result.units["flaky"].attempts == 3
    events = [json.loads(line) for line in next(tmp_path.glob("*/events.jsonl")).read_text().splitlines()]
    retries = [e["message"] for e in events if e["state"] == "retrying"]
    assert retries == ["retry in 0.1s", "retry in 0.2s"]  # 0.1 s, then 0.1 * 2


def test_retries_exhausted_raise_the_last_exception() -> None:
    attempts = []
    with pytest.raises(ConnectionError, match="attempt 3"), sflow.flow("retry", record=False) as f:

        @f.task(retries=2)
        async def never():
            attempts.append(1)
            raise ConnectionError(f"attempt {len(attempts)}")

    assert len(attempts) == 3


def test_timeout_raises_named_timeout_error() -> None:
    cancelled = []
    with pytest.raises(TaskTimeout) as info, sflow.flow("slow", record=False) as f:

        @f.task(timeout=0.2)
        async def slow():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    assert isinstance(info.value, TimeoutError)
    assert info.value.task == "slow" and info.value.timeout == 0.2
    assert "'slow'" in str(info.value)
    assert cancelled == [True]  # the timeout ended the call: its 10 s sleep never finished
    assert f.states["slow"] is State.FAILED


def test_timeout_of_a_sync_task_and_retry() -> None:
    with pytest.raises(TaskTimeout, match="attempt 2"), sflow.flow("slow", record=False) as f:

        @f.task(timeout=0.1, retries=1)
        def slow():
            time.sleep(0.4)

    assert f.run_result is not None and f.run_result.units["slow"].attempts == 2


class Blocking:
    """A sync function whose calls block until released, counting calls running at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = self.running = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, x: int = 0) -> int:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
            overlapping = self.running > 1
        if overlapping:
            self.release.set()  # a second attempt runs beside the first: let both end
        self.release.wait(60)
        with self._lock:
            self.running -= 1
        return x


@pytest.mark.parametrize("mapped", [False, True])
def test_a_timed_out_sync_call_and_its_retry_never_run_together(mapped: bool) -> None:
    """The retry waits for the timed-out call's thread; here that never returns in time."""
    blocking = Blocking()
    options = {"map": [1]} if mapped else {}
    try:
        with pytest.raises(TaskTimeout) as info, sflow.flow("overlap", record=False) as f:
            f.task(blocking, name="slow", timeout=0.1, retries=2, **options)
    finally:
        blocking.release.set()
    assert blocking.peak == 1 and blocking.calls == 1
    assert info.value.attempt == 3
    assert "never called the function: an earlier attempt's call was still running" in str(info.value)
    assert info.value.item == (0 if mapped else None)
    # a map's retries are its items': the map itself is attempted once
    assert f.run_result is not None and f.run_result.units["slow"].attempts == (1 if mapped else 3)


def test_a_retry_calls_again_once_the_timed_out_call_has_returned() -> None:
    calls: list[int] = []

    def slow_once() -> str:
        calls.append(len(calls))
        if len(calls) == 1:
            time.sleep(0.3)  # times out, returns later
        return "ok"

    with sflow.flow("later", record=False) as f:
        f.task(slow_once, name="t", timeout=0.2, retries={"count": 3, "interval": 0.05})
    assert f.result.t == "ok" and len(calls) == 2


def test_user_timeout_error_is_not_mistaken_for_ours() -> None:
    with pytest.raises(TimeoutError) as info, sflow.flow("own", record=False) as f:

        @f.task(timeout=5)
        def own():
            raise TimeoutError("the database was slow")

    assert not isinstance(info.value, TaskTimeout)


def test_failure_reraises_original_and_cancels_dependents() -> None:
    unrelated_cancelled = []
    with pytest.raises(DataError) as info, sflow.flow("fail", record=False) as f:

        @f.task
        def load():
            return [1, 2]

        @f.task
        def parse(load):
            raise DataError("row 2 is broken")

        @f.task
        def report(parse):
            return parse

        @f.task
        def publish(report):
            return report

        @f.task
        async def unrelated():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                unrelated_cancelled.append(True)
                raise

    assert str(info.value) == "row 2 is broken"
    frames = [fr.name for fr in traceback.extract_tb(info.value.__traceback__)]
    assert "parse" in frames  # the original traceback is kept
    assert any("task 'parse' of flow 'fail'" in n for n in info.value.__notes__)
    assert f.states == {
        "load": State.SUCCEEDED,
        "parse": State.FAILED,
        "report": State.CANCELLED,
        "publish": State.CANCELLED,
        "unrelated": State.CANCELLED,
    }
    assert unrelated_cancelled == [True]
    assert isinstance(f.errors["parse"], DataError)


def test_keep_going_finishes_independent_work() -> None:
    with pytest.raises(DataError), sflow.flow("kg", keep_going=True, record=False) as f:

        @f.task
        def bad():
            raise DataError("x")

        @f.task
        def child(bad):
            return bad

        @f.task
        async def independent():
            await asyncio.sleep(0.1)
            return "done"

    assert f.result.independent == "done"
    assert f.states["child"] is State.SKIPPED


def test_cancelling_an_async_with_cancels_running_tasks(tmp_path) -> None:
    cancelled = []
    running = asyncio.Event()

    async def main() -> None:
        async with sflow.flow("cancel", output_dir=tmp_path) as f:

            @f.task
            async def long():
                running.set()
                try:
                    await asyncio.sleep(600)
                except asyncio.CancelledError:
                    cancelled.append(True)
                    raise

        pytest.fail("not reached")

    async def outer() -> None:
        task = asyncio.ensure_future(main())
        await running.wait()  # the task runs: cancel it mid-call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(outer())
    assert cancelled == [True]
    (run_dir,) = (p for p in tmp_path.iterdir() if p.is_dir())  # beside the run index
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["tasks"]["long"]["state"] == "cancelled"


def test_ctrl_c_during_the_block_cancels_everything(tmp_path) -> None:
    started, cancelled = [], []

    def ctrl_c_once_all_run(name: str) -> None:
        started.append(name)
        if len(started) == 6:  # a and the five items of b
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt), sflow.flow("ctrlc", output_dir=tmp_path) as f:

        @f.task
        async def a():
            ctrl_c_once_all_run("a")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append("a")
                raise

        @f.task(map=range(5))
        async def b(x):
            ctrl_c_once_all_run("b")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append("b")
                raise

        @f.task
        def c(a, b):
            return 1

    assert sorted(cancelled) == ["a", "b", "b", "b", "b", "b"]
    assert set(f.states.values()) == {State.CANCELLED}
    (run_dir,) = (p for p in tmp_path.iterdir() if p.is_dir())  # beside the run index
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is True


def test_environment_defaults_apply() -> None:
    configure_dispatch(environments={"here": {"executor": "local", "retries": {"count": 2}, "timeout": 0.2}})
    attempts = []
    with pytest.raises(TaskTimeout), sflow.flow("envdef", environment="here", record=False) as f:

        @f.task
        async def slow():
            attempts.append(1)
            await asyncio.sleep(5)

    assert len(attempts) == 3


def test_environment_max_concurrent_applies_to_maps() -> None:
    configure_dispatch(environments={"narrow": {"executor": "local", "max_concurrent": 2}})
    now = peak = 0

    async def item(x: int) -> int:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.01)
        now -= 1
        return x

    with sflow.flow("envmax", record=False) as f:
        f.task(item, map=range(10), environment="narrow")
    assert peak == 2


_SIGTERM_SCRIPT = """
import pathlib, sys, time
import sflow.flow
from sflow.dispatch.config import config

out, pidfile = sys.argv[1], sys.argv[2]
config(environments={"sub": {"executor": "subprocess", "executor_config": {"listen_host": "127.0.0.1"}}})
with sflow.flow("term", output_dir=out) as f:

    @f.task(environment="sub")
    def slow():
        import os
        pathlib.Path(pidfile).write_text(str(os.getpid()))
        time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def test_sigterm_stops_the_flow_cleanly_and_exits_143(tmp_path, wait_until) -> None:
    import subprocess
    import sys

    script = tmp_path / "term.py"
    script.write_text(_SIGTERM_SCRIPT)
    pidfile = tmp_path / "worker.pid"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "out"), str(pidfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: proc.poll() is not None or (pidfile.exists() and pidfile.read_text()), "the worker"
        )
        assert proc.poll() is None, proc.communicate()
        worker = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err  # an exit status, not death by the signal (-15)
    assert not _alive(worker), "the task's worker process outlived the flow"
    (run_dir,) = (p for p in (tmp_path / "out").iterdir() if p.is_dir())  # beside the run index
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["tasks"]["slow"]["state"] == "cancelled"
