"""`python -m sflow.dispatch.worker` as a real subprocess talking to a real callback server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import dispatch_helpers as h
import pytest

from sflow.dispatch import outcome, payload, protocol, worker
from sflow.dispatch.callback import CallbackServer
from sflow.dispatch.errors import PayloadVersionError

SECRET = "worker-test-secret"


class Harness:
    """A callback server plus a way to start workers on a payload."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.server = CallbackServer("127.0.0.1", 0)
        self.events: list[protocol.Event] = []
        self.server.register_run("run1", SECRET, self.events.append)

    def env(
        self, calls: list[tuple[str, Callable[..., Any], tuple[Any, ...]]], **header: Any
    ) -> dict[str, str]:
        head = payload.PayloadHeader(
            run_id="run1", result_dir=str(self.tmp_path), callback_url=self.server.url, heartbeat_interval=0.2
        )
        head = dataclasses.replace(head, **header)
        data = payload.encode([(cid, fn.__name__, fn, args, {}) for cid, fn, args in calls], head)
        if "python" in header:  # forge a payload from another interpreter: patch the JSON header
            data = data.replace(platform_version().encode(), header["python"].encode(), 1)
        value = payload.to_env_value(data, self.tmp_path / "p.payload", inline_limit=1024)
        return {**os.environ, payload.PAYLOAD_ENV: value, payload.SECRET_ENV: SECRET}

    async def run(self, env: dict[str, str], stop_after: float | None = None) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sflow.dispatch.worker", env=env, stderr=asyncio.subprocess.PIPE
        )
        if stop_after is not None:  # once it runs the call (its handler is installed by then)
            while protocol.TASK_STARTED not in self.types() and proc.returncode is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(stop_after)
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, err.decode()

    def types(self, call_id: str = "c0") -> list[str]:
        return [e.type for e in self.events if e.call_id == call_id and e.type != protocol.HEARTBEAT]


def platform_version() -> str:
    import platform

    return platform.python_version()


def run_with_server(tmp_path: Path, scenario: Callable[[Harness], Any]) -> Any:
    async def main() -> Any:
        harness = Harness(tmp_path)
        await harness.server.start()
        try:
            return await scenario(harness)
        finally:
            await harness.server.aclose()

    return asyncio.run(main())


def test_happy_path_posts_started_then_result_and_writes_the_result_file(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        code, err = await hs.run(hs.env([("c0", h.add, (2, 3))]))
        assert code == 0, err
        assert hs.types() == [protocol.TASK_STARTED, protocol.TASK_RESULT]
        assert outcome.decode_value(hs.events[-1].data) == 5
        on_disk = protocol.read_result_file(protocol.result_path(tmp_path, "c0"), SECRET)
        assert on_disk is not None and outcome.decode_value(on_disk.data) == 5

    run_with_server(tmp_path, scenario)


def test_async_callable_runs_in_the_worker(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        code, err = await hs.run(hs.env([("c0", h.async_add, (2, 40))]))
        assert code == 0, err
        assert outcome.decode_value(hs.events[-1].data) == 42

    run_with_server(tmp_path, scenario)


def test_error_path_sends_the_exception_with_its_type_and_traceback(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        code, _ = await hs.run(hs.env([("c0", h.fail, ("nope",))]))
        assert code == 1
        assert hs.types() == [protocol.TASK_STARTED, protocol.TASK_ERROR]
        exc = outcome.decode_error(hs.events[-1].data, "test")
        assert isinstance(exc, h.CustomError) and exc.code == 42
        assert "in fail" in exc.__notes__[0] and "CustomError: ('nope', 42)" in exc.__notes__[0]
        assert "raise CustomError" in str(exc.__cause__)

    run_with_server(tmp_path, scenario)


def test_a_traceback_of_code_shipped_by_value_shows_the_users_file_line_and_source(tmp_path: Path) -> None:
    """A module pickled by value, whose file the worker cannot read (deleted after pickling)."""
    path = tmp_path / "user_code.py"
    path.write_text(
        "def explode(message):\n    def deeper():\n        raise KeyError(message)\n\n    deeper()\n"
    )

    async def scenario(hs: Harness) -> None:
        with by_value_module(path) as module:
            env = hs.env([("c0", module.explode, ("kaput",))])
        path.unlink()
        code, _ = await hs.run(env)
        assert code == 1
        note = outcome.decode_error(hs.events[-1].data, "test").__notes__[0]
        assert f'File "{path}", line 5, in explode\n    deeper()' in note
        assert f'File "{path}", line 3, in deeper\n    raise KeyError(message)' in note

    run_with_server(tmp_path, scenario)


@contextlib.contextmanager
def by_value_module(path: Path) -> Iterator[ModuleType]:
    """Import `path` as a module that cloudpickle ships by value, as long as the block runs."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)
        yield module
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        del sys.modules[path.stem]


def test_an_unpicklable_exception_arrives_as_remote_error(tmp_path: Path) -> None:
    from sflow.dispatch.errors import RemoteError

    async def scenario(hs: Harness) -> None:
        await hs.run(hs.env([("c0", h.fail_unpicklable, ())]))
        exc = outcome.decode_error(hs.events[-1].data, "test")
        assert isinstance(exc, RemoteError) and exc.exc_type.endswith("Unpicklable")
        assert "cannot travel" in str(exc)

    run_with_server(tmp_path, scenario)


def test_python_version_mismatch_is_reported_as_an_error_event(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        code, err = await hs.run(hs.env([("c0", h.add, (1,))], python="2.7.18"))
        assert code == 3 and "Python version mismatch" in err
        exc = outcome.decode_error(hs.events[-1].data, "test")
        assert isinstance(exc, PayloadVersionError) and "2.7.18" in str(exc)

    run_with_server(tmp_path, scenario)


def test_array_element_runs_the_item_at_its_task_id(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        env = hs.env([(f"c{i}", h.add, (i, 100)) for i in range(3)])
        code, err = await hs.run({**env, "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_JOB_ID": "77"})
        assert code == 0, err
        result = hs.events[-1]
        assert result.call_id == "c2" and outcome.decode_value(result.data) == 102
        assert result.data["job_id"] == "77_2"

    run_with_server(tmp_path, scenario)


def test_heartbeats_are_posted_while_the_call_runs(tmp_path: Path) -> None:
    """The call runs until two heartbeats have arrived: without them it would never end."""
    go = tmp_path / "go"

    async def release_after_two_beats(hs: Harness) -> None:
        while sum(e.type == protocol.HEARTBEAT for e in hs.events) < 2:
            await asyncio.sleep(0.05)
        go.touch()

    async def scenario(hs: Harness) -> None:
        releaser = asyncio.ensure_future(release_after_two_beats(hs))
        code, err = await hs.run(hs.env([("c0", h.once_file_exists, (str(go), "ok"))]))
        assert code == 0, err
        (result,) = [e for e in hs.events if e.type == protocol.TASK_RESULT]
        assert releaser.done() and outcome.decode_value(result.data) == "ok"

    run_with_server(tmp_path, scenario)


def test_sigterm_posts_task_cancelled(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        code, err = await hs.run(hs.env([("c0", h.sleep_then, (30, "never"))]), stop_after=0.3)
        assert code == 143, err
        assert hs.types() == [protocol.TASK_STARTED, protocol.TASK_CANCELLED]
        last = hs.events[-1]  # of all events, heartbeats included: none may follow
        assert last.type == protocol.TASK_CANCELLED and last.data["reason"] == "SIGTERM"

    run_with_server(tmp_path, scenario)


class RecordingReporter(worker.Reporter):
    """A reporter whose POSTs are recorded by event type instead of sent."""

    def __init__(self, tmp_path: Path) -> None:
        head = payload.PayloadHeader(run_id="run1", result_dir=str(tmp_path), callback_url="http://unused")
        super().__init__(head, "c0", SECRET, None)
        self.sent: list[str] = []
        self.on_heartbeat: Callable[[], None] = lambda: None

    def post(self, body: bytes, attempts: int, timeout: float = 10.0) -> bool:
        kind = protocol.parse_event(body).type
        if kind == protocol.HEARTBEAT:
            self.on_heartbeat()
        self.sent.append(kind)  # like the server: an event counts once its POST completed
        return True


@pytest.mark.parametrize("final", ["cancelled", "finished"])
def test_no_heartbeat_is_posted_after_the_final_event(tmp_path: Path, final: str) -> None:
    reporter = RecordingReporter(tmp_path)
    if final == "cancelled":
        reporter.cancelled("SIGTERM")
    else:
        reporter.finish(protocol.TASK_RESULT, outcome.value_data(1))
    reporter.heartbeat()
    assert protocol.HEARTBEAT not in reporter.sent


def test_task_cancelled_waits_for_the_heartbeat_in_flight(tmp_path: Path) -> None:
    """SIGTERM while a heartbeat is being POSTed: the heartbeat lands first, then task_cancelled."""
    reporter = RecordingReporter(tmp_path)
    canceller = threading.Thread(target=reporter.cancelled, args=("SIGTERM",))

    def cancel_meanwhile() -> None:
        reporter.on_heartbeat = lambda: None
        canceller.start()
        canceller.join(timeout=1.0)  # unordered, it would have posted by now; ordered, it waits for us

    reporter.on_heartbeat = cancel_meanwhile
    reporter.heartbeat()
    canceller.join()
    assert reporter.sent == [protocol.HEARTBEAT, protocol.TASK_CANCELLED]


def test_lost_callback_still_leaves_the_result_file(tmp_path: Path) -> None:
    async def scenario(hs: Harness) -> None:
        env = hs.env([("c0", h.add, (20, 22))], callback_url="http://127.0.0.1:9/nobody", post_attempts=2)
        code, err = await hs.run(env)
        assert code == 0 and "callback URL http://127.0.0.1:9/nobody is unreachable" in err
        event = protocol.read_result_file(protocol.result_path(tmp_path, "c0"), SECRET)
        assert event is not None and outcome.decode_value(event.data) == 42

    run_with_server(tmp_path, scenario)


def test_an_event_refused_as_too_large_is_not_resent(tmp_path: Path) -> None:
    """HTTP 413 is final, like 403: the worker relies on its result file instead of retrying."""

    async def scenario(hs: Harness) -> None:
        hs.server.max_body = 2000
        env = hs.env([("c0", h.big_value, (5000,))], inline_result_limit=1024 * 1024)
        code, err = await hs.run(env)
        # refused at once: no back-off of 0.5 + 1 + 2 + 4 + 8 s, which ends "could not deliver"
        assert code == 0 and "refused the event (HTTP 413)" in err and "could not deliver" not in err
        assert hs.server.refused == 1  # sent once: the refused bytes are not resent
        event = protocol.read_result_file(protocol.result_path(tmp_path, "c0"), SECRET)
        assert event is not None and outcome.decode_value(event.data) == b"x" * 5000

    run_with_server(tmp_path, scenario)


def test_missing_environment_is_a_clear_exit_2() -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_BACKEND")}
    proc = subprocess.run(
        [sys.executable, "-m", "sflow.dispatch.worker"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "SFLOW_BACKEND_PAYLOAD" in proc.stderr


@pytest.mark.parametrize("value", ["@/nonexistent/payload", "bm90IGEgcGF5bG9hZA=="])
def test_unusable_payload_is_a_clear_exit_2(value: str) -> None:
    import subprocess

    env = {**os.environ, payload.PAYLOAD_ENV: value, payload.SECRET_ENV: "x"}
    proc = subprocess.run(
        [sys.executable, "-m", "sflow.dispatch.worker"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unusable payload" in proc.stderr
