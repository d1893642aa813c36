"""Following a log: incremental reads, split lines, and only this attempt's file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from probe_helpers import other_tasks, start_process

from sflow.probes import ProbedAttempt, ProbeSpec
from sflow.probes.checks import LOG_FAST, LOG_SLOW, LogWatchCheck
from sflow.probes.logwatch import LogFollower, MatchCounter
from sflow.record.run_dir import RunRecord

pytestmark = pytest.mark.timeout(30)


def log_watch(pattern: str, count: int = 1, **timing: float) -> ProbeSpec:
    return ProbeSpec("log_watch", {"pattern": pattern, "shown": pattern, "match_count": count}, **timing)


def test_follower_reads_only_new_bytes_and_joins_split_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, counter = LogFollower(path), MatchCounter("ready")
    with open(path, "ab", buffering=0) as log:
        log.write(b"starting\nrea")
        lines, partial, fresh = follower.read()
        assert (lines, partial, fresh) == (["starting"], "rea", True)
        counter.feed(lines)
        assert counter.total(partial) == 0
        log.write(b"dy\r\nready ready")
        lines, partial, _ = follower.read()
        assert (lines, partial) == (["ready"], "ready ready")
        counter.feed(lines)
        assert counter.total(partial) == 3  # the unfinished line counts provisionally...
        assert counter.committed == 1  # ...and is only committed once its newline arrives
        assert follower.read() == ([], "ready ready", False)
    follower.close()


def test_follower_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "late.log"
    follower = LogFollower(path)
    assert follower.read() == ([], "", False)
    path.write_text("hello\n")
    assert follower.read() == (["hello"], "", True)
    follower.close()


def test_log_watch_readiness_follows_a_real_process(tmp_path: Path) -> None:
    async def main() -> None:
        inner = await start_process("sleep 0.2; echo ready; sleep 30", tmp_path / "svc.log")
        attempt = ProbedAttempt(inner, [log_watch("ready", timeout=10)], [], ["127.0.0.1"], grace=1)
        verdict = await attempt.ready()
        assert verdict.ok, verdict.reason
        assert "ready" in (tmp_path / "svc.log").read_text()  # not before the line was written
        assert isinstance(attempt.info["ready_at"], float)
        await attempt.stop(1)
        assert not other_tasks()

    asyncio.run(main())


def test_match_count_needs_that_many_matches(tmp_path: Path) -> None:
    async def main() -> None:
        inner = await start_process(
            "for i in 1 2 3 4; do echo tick $i; sleep 0.1; done; sleep 30", tmp_path / "t.log"
        )
        attempt = ProbedAttempt(inner, [log_watch(r"tick \d", count=3)], [], [], grace=1)
        verdict = await attempt.ready()
        assert verdict.ok
        assert (tmp_path / "t.log").read_text().count("tick") in (3, 4)
        await attempt.stop(1)

    asyncio.run(main())


def test_a_retry_does_not_match_the_previous_attempts_log(tmp_path: Path) -> None:
    """The known weakness: attempt 2's readiness must not pass on attempt 1's 'ready' line."""

    async def main() -> None:
        record = RunRecord(tmp_path, "wf", "run")
        try:
            first = await start_process("echo ready; exit 1", record.attempt_log("svc", 1))
            assert not (await first.wait()).ok
            second_log = record.attempt_log("svc", 2)  # the first log is renamed aside
            second = await start_process("echo starting; sleep 30", second_log)
            attempt = ProbedAttempt(second, [log_watch("ready", timeout=0.5)], [], [], grace=1)
            verdict = await attempt.ready()
            assert not verdict.ok
            assert verdict.reason.startswith("readiness probe log_watch 'ready' did not pass within 0.5s")
            assert "ready" in (second_log.parent / "svc.attempt1.log").read_text()
            await attempt.stop(1)
        finally:
            record.close()

    asyncio.run(main())


def test_a_follower_stays_on_its_own_file_after_the_rename(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    path.write_text("attempt one\n")
    follower = LogFollower(path)
    path.rename(tmp_path / "svc.attempt1.log")
    path.write_text("attempt two: ready\n")
    assert follower.read()[0] == ["attempt one"]
    assert follower.read()[0] == []
    follower.close()


def test_no_log_file_fails_readiness_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        inner = await start_process("sleep 30", tmp_path / "x.log")
        inner.log_path = None
        attempt = ProbedAttempt(inner, [log_watch("ready")], [], [], grace=1)
        verdict = await attempt.ready()
        assert not verdict.ok and "no log file" in verdict.reason
        await attempt.stop(1)

    asyncio.run(main())


def test_log_watch_rereads_soon_after_output_and_backs_off_while_idle(tmp_path: Path) -> None:
    """How long the check waits between reads: what makes readiness follow the log closely."""
    path = tmp_path / "svc.log"
    path.write_text("")
    check = LogWatchCheck(path, "ready", "ready", 1)

    async def pauses(n: int, interval: float) -> list[float]:
        waits = []
        for _ in range(n):
            await check.run(1)
            waits.append(check.pause(interval))
        return waits

    idle = asyncio.run(pauses(6, interval=10))
    assert idle == [LOG_FAST * 2, LOG_FAST * 4, LOG_FAST * 8, LOG_SLOW, LOG_SLOW, LOG_SLOW]
    assert asyncio.run(pauses(3, interval=0.05)) == [0.05, 0.05, 0.05]  # a short interval is the ceiling
    with open(path, "a") as log:
        log.write("starting\n")
    assert asyncio.run(pauses(2, interval=10)) == [LOG_FAST, LOG_FAST * 2]  # fresh output: at once
    check.close()
