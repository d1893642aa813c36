"""ProbedAttempt around real processes: failure probes, lifetime, pass-through."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from probe_helpers import HttpServer, ScriptedCheck, other_tasks, start_process

from sflow.probes import ProbedAttempt, ProbeSpec, wrap_with_probes
from sflow.probes.loops import watch_failure

pytestmark = pytest.mark.timeout(30)


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_log_watch_failure_probe_stops_a_real_process(tmp_path: Path) -> None:
    async def main() -> None:
        inner = await start_process(
            'echo start; sleep 0.2; echo "CUDA error: boom"; sleep 30', tmp_path / "j.log"
        )
        probe = ProbeSpec("log_watch", {"pattern": "CUDA error", "shown": "CUDA error", "match_count": 1})
        attempt = ProbedAttempt(inner, [], [probe], [], grace=2)
        outcome = await attempt.wait()  # the process would run 30 s: it was stopped (-15)
        assert not outcome.ok
        assert outcome.reason == "failure probe log_watch 'CUDA error' fired: matched 'CUDA error: boom'"
        assert outcome.exit_code == -15  # stopped with SIGTERM
        assert attempt.info["failure_probe"] == outcome.reason
        assert not group_alive(inner.proc.pid)
        assert not other_tasks()

    asyncio.run(main())


def test_failure_threshold_needs_consecutive_failures(tmp_path: Path) -> None:
    async def main() -> None:
        async with HttpServer([200, 500, 500, 200, 500, 500, 500, 200]) as server:
            inner = await start_process("sleep 30", tmp_path / "j.log")
            probe = ProbeSpec(
                "http_get", {"url": server.url, "headers": {}}, interval=0.02, failure_threshold=3
            )
            outcome = await ProbedAttempt(inner, [], [probe], ["127.0.0.1"], grace=1).wait()
            assert len(server.requests) == 7  # the 500 pair at #2-3 was interrupted by a 200
            assert outcome.reason == (
                f"failure probe http_get {server.url} fired: 3 failed tries in a row (last: HTTP 500)"
            )

    asyncio.run(main())


def test_a_failure_probe_waits_for_its_delay(virtual_time) -> None:
    async def main() -> tuple[str | None, list[float]]:
        check = ScriptedCheck([False])
        spec = ProbeSpec("tcp_port", delay=0.3, interval=0.02, failure_threshold=2)
        return await watch_failure(check, spec, 0.0), check.tries

    reason, tries = virtual_time(main)
    assert tries == pytest.approx([0.3, 0.32])
    assert reason == "failure probe scripted fired: 2 failed tries in a row (last: no)"


def test_stopping_disarms_failure_probes(tmp_path: Path) -> None:
    """A service stopped on purpose goes down; that must not read as a probe failure."""

    async def main() -> None:
        async with HttpServer([200, 500]) as server:
            inner = await start_process("sleep 30", tmp_path / "j.log")
            probe = ProbeSpec("http_get", {"url": server.url}, interval=0.02, failure_threshold=1)
            attempt = ProbedAttempt(inner, [], [probe], ["127.0.0.1"], grace=1)
            await asyncio.sleep(0.01)
            await attempt.stop(1)
            outcome = await attempt.wait()
            assert outcome.reason == "killed by SIGTERM"
            assert not other_tasks()

    asyncio.run(main())


def test_outcome_passes_through_and_nothing_outlives_the_attempt(tmp_path: Path, free_port) -> None:
    async def main() -> None:
        inner = await start_process("echo fine; exit 0", tmp_path / "j.log")
        probe = ProbeSpec("log_watch", {"pattern": "never", "match_count": 1})
        port = free_port()
        attempt = ProbedAttempt(
            inner, [], [probe, ProbeSpec("tcp_port", {"port": port}, delay=5)], [], grace=1
        )
        outcome = await attempt.wait()
        assert outcome.ok and outcome.reason == "exit code 0"
        assert await attempt.wait() is outcome  # may be awaited again
        assert not other_tasks()

    asyncio.run(main())


def test_exiting_before_ready_fails_readiness(tmp_path: Path, free_port) -> None:
    async def main() -> None:
        inner = await start_process("sleep 0.1; exit 3", tmp_path / "j.log")
        probe = ProbeSpec("tcp_port", {"port": free_port()}, interval=0.05)
        attempt = ProbedAttempt(inner, [probe], [], ["127.0.0.1"], grace=1)
        assert attempt.has_readiness
        verdict = await attempt.ready()
        assert not verdict.ok and verdict.reason == "exited before it became ready (exit code 3)"
        assert (await attempt.wait()).exit_code == 3
        assert not (await attempt.ready()).ok  # asked again after the end: same answer
        assert not other_tasks()

    asyncio.run(main())


def test_wrap_with_probes_reads_the_task_model(tmp_path: Path) -> None:
    async def main() -> None:
        inner = await start_process("echo listening; sleep 30", tmp_path / "j.log")
        assert wrap_with_probes(inner, NS(probes=None), ["127.0.0.1"], 1) is inner
        task = NS(
            probes=NS(readiness=[NS(log_watch=NS(match_pattern="listening"), timeout="5s")], failure=None)
        )
        wrapped = wrap_with_probes(inner, task, ["127.0.0.1"], 1)
        assert isinstance(wrapped, ProbedAttempt) and wrapped.has_readiness
        assert wrapped.log_path == inner.log_path and wrapped.info is inner.info
        assert (await wrapped.ready()).ok
        await wrapped.stop(1)
        assert (await wrapped.wait()).reason == "killed by SIGTERM"

    asyncio.run(main())


def test_a_failure_before_readiness_is_the_readiness_verdict(tmp_path: Path, free_port) -> None:
    async def main() -> None:
        inner = await start_process("echo 'Traceback: boom'; sleep 30", tmp_path / "j.log")
        never = ProbeSpec("tcp_port", {"port": free_port()}, interval=0.05)
        crash = ProbeSpec("log_watch", {"pattern": "Traceback", "shown": "Traceback", "match_count": 1})
        attempt = ProbedAttempt(inner, [never], [crash], ["127.0.0.1"], grace=1)
        verdict = await attempt.ready()
        assert not verdict.ok
        assert verdict.reason.startswith(
            "exited before it became ready (failure probe log_watch 'Traceback' fired"
        )
        assert not (await attempt.wait()).ok
        assert not other_tasks()

    asyncio.run(main())
