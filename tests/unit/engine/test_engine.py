"""The engine's scheduling rules, with scripted attempts (real processes are covered end to end)."""

import asyncio
import os
from pathlib import Path

import pytest

from sflow.engine import Attempt, Engine, Outcome, RetryPolicy, State, Unit
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.spawn import LaunchSpec


class Scripted(Attempt):
    """An attempt that ends after `duration` with `ok`, optionally ready after `ready_after`."""

    def __init__(self, duration, ok=True, ready_after=None, log=None, stop_delay=0.0):
        self.info = {}
        self.log_path = None
        self.duration = duration
        self.ok = ok
        self.ready_after = ready_after
        self.stopped = False
        self._done = asyncio.get_running_loop().create_future()
        self._timer = asyncio.get_running_loop().call_later(
            duration, self._end, ok, "exit code 0" if ok else "exit code 1"
        )
        self.log = log
        self.stop_delay = stop_delay

    def _end(self, ok, reason):
        if not self._done.done():
            self._done.set_result(Outcome(ok=ok, reason=reason, exit_code=0 if ok else 1))

    async def wait(self):
        return await asyncio.shield(self._done)

    async def stop(self, grace):
        self.stopped = True
        await asyncio.sleep(self.stop_delay)  # a process that takes a moment to die
        self._timer.cancel()
        self._end(False, "killed by SIGTERM")
        await self.wait()

    @property
    def has_readiness(self):
        return self.ready_after is not None

    async def ready(self):
        await asyncio.sleep(self.ready_after)
        return Outcome(ok=True)


def alive(pid):
    """True while `pid` runs; a zombie (an init that reaps late) is dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def unit(name, deps=(), log=None, **kw):
    plan = kw.pop("plan", None) or [dict(duration=0.01)]
    attempts = []

    async def start(n):
        spec = plan[min(n, len(plan)) - 1]
        if log is not None:
            log.append((asyncio.get_running_loop().time(), name, "start", n))
        a = Scripted(**spec)
        attempts.append(a)
        return a

    u = Unit(name=name, start=start, deps=tuple(deps), **kw)
    u.meta["attempts"] = attempts
    return u


def run(units, **kw):
    events = []
    engine = Engine(units, listeners=[events.append], **kw)
    result = asyncio.run(engine.run())
    return result, events


def test_dependents_start_after_dependencies():
    log = []
    result, _ = run([unit("a", log=log), unit("b", ["a"], log=log), unit("c", ["a"], log=log)])
    assert result.ok
    starts = [name for _, name, *_ in log]
    assert starts[0] == "a" and set(starts[1:]) == {"b", "c"}
    assert result.units["b"].started >= result.units["a"].ended


def test_fail_fast_cancels_the_rest():
    slow = unit("slow", plan=[dict(duration=600)])
    result, _ = run([unit("bad", plan=[dict(duration=0.01, ok=False)]), slow, unit("after", ["bad"])])
    assert not result.ok
    assert result.units["bad"].state is State.FAILED
    assert result.units["slow"].state is State.CANCELLED
    assert result.units["after"].state is State.CANCELLED
    assert result.stop_reason == "task 'bad' failed"
    assert slow.meta["attempts"][0].stopped  # not waited for


def test_a_failure_is_announced_before_the_cancellations_it_causes():
    _, events = run([unit("bad", plan=[dict(duration=0.01, ok=False)]), unit("after", ["bad"])])
    finals = [(e.unit, e.state) for e in events if e.state.done]
    assert finals == [("bad", State.FAILED), ("after", State.CANCELLED)]


def test_keep_going_skips_only_descendants():
    result, _ = run(
        [
            unit("bad", plan=[dict(duration=0.01, ok=False)]),
            unit("child", ["bad"]),
            unit("grandchild", ["child"]),
            unit("other", plan=[dict(duration=0.1)]),
        ],
        keep_going=True,
    )
    states = {n: r.state for n, r in result.units.items()}
    assert states == {
        "bad": State.FAILED,
        "child": State.SKIPPED,
        "grandchild": State.SKIPPED,
        "other": State.SUCCEEDED,
    }
    assert not result.ok


def test_retries_with_backoff_then_success(virtual_time):
    log = []
    u = unit(
        "flaky",
        log=log,
        plan=[dict(duration=0.01, ok=False), dict(duration=0.01, ok=False), dict(duration=0.01)],
        retries=RetryPolicy(count=2, interval=0.05, backoff=2),
    )
    events = []

    async def scenario():
        return await Engine([u], listeners=[events.append]).run()

    result = virtual_time(scenario)
    assert result.ok and result.units["flaky"].attempts == 3
    # each attempt lasts 0.01 s; the retries wait 0.05 s, then 0.05 * 2
    assert [t for t, *_ in log] == pytest.approx([0.0, 0.01 + 0.05, 0.01 + 0.05 + 0.01 + 0.1])
    assert result.elapsed == pytest.approx(0.18)
    assert [e.state for e in events].count(State.RETRYING) == 2


def test_retries_exhausted_fail():
    u = unit("bad", plan=[dict(duration=0.01, ok=False)], retries=RetryPolicy(count=1))
    result, _ = run([u])
    assert result.units["bad"].state is State.FAILED and result.units["bad"].attempts == 2


def test_task_timeout_stops_the_attempt():
    u = unit("slow", plan=[dict(duration=10)], timeout=0.1)
    result, _ = run([u])
    r = result.units["slow"]
    assert r.state is State.FAILED and "timed out after 0.1s" in r.outcome.reason
    assert u.meta["attempts"][0].stopped


def test_workflow_timeout():
    result, _ = run([unit("slow", plan=[dict(duration=10)])], timeout=0.1)
    assert not result.ok and "workflow timed out" in result.stop_reason
    assert result.units["slow"].state is State.CANCELLED


def test_service_ready_releases_dependents_and_is_stopped_at_the_end():
    server = unit("server", plan=[dict(duration=30, ready_after=0.05)])
    client = unit("client", ["server"], plan=[dict(duration=0.05)])
    result, _ = run([server, client])
    assert result.ok, result.units
    assert result.units["server"].ready is not None
    assert result.units["client"].started >= result.units["server"].ready
    assert server.meta["attempts"][0].stopped


def test_service_exiting_before_ready_fails():
    server = unit("server", plan=[dict(duration=0.01, ready_after=1)])
    result, _ = run([server, unit("client", ["server"])])
    assert result.units["server"].state is State.FAILED
    assert "exited before it became ready" in result.units["server"].outcome.reason


def test_service_dying_while_dependents_run_fails_the_run():
    server = unit("server", plan=[dict(duration=0.1, ready_after=0.01)])
    client = unit("client", ["server"], plan=[dict(duration=5)])
    result, _ = run([server, client])
    assert result.units["server"].state is State.FAILED
    assert "still needed by client" in result.units["server"].outcome.reason
    assert result.units["client"].state is State.CANCELLED


def test_a_failure_cancels_a_ready_service_and_keep_going_retires_it():
    def services_after_a_failed_client(keep_going: bool) -> State:
        server = unit("server", plan=[dict(duration=30, ready_after=0.01)])
        client = unit("client", ["server"], plan=[dict(duration=0.05, ok=False)])
        result, _ = run([server, client], keep_going=keep_going)
        assert result.units["client"].state is State.FAILED and not result.ok
        assert server.meta["attempts"][0].stopped
        return result.units["server"].state

    assert services_after_a_failed_client(keep_going=False) is State.CANCELLED  # stopped with the run
    assert services_after_a_failed_client(keep_going=True) is State.SUCCEEDED  # served until unneeded


def test_request_stop_marks_interrupted():
    async def main():
        engine = Engine([unit("slow", plan=[dict(duration=10)]), unit("next", ["slow"])])
        task = asyncio.ensure_future(engine.run())
        await asyncio.sleep(0.05)
        engine.request_stop("interrupted", interrupted=True)
        return await task

    result = asyncio.run(main())
    assert result.interrupted and not result.ok
    assert result.units["slow"].state is State.CANCELLED
    assert result.units["next"].state is State.CANCELLED


def test_start_error_is_a_failed_attempt():
    async def start(n):
        raise RuntimeError("no such operator")

    result, _ = run([Unit(name="x", start=start)])
    assert result.units["x"].state is State.FAILED
    assert "could not start: no such operator" in result.units["x"].outcome.reason


def test_process_group_is_killed_with_grandchildren(tmp_path: Path):
    pidfile = tmp_path / "grandchild.pid"

    async def start(n):
        script = f"sleep 60 & echo $! > {pidfile}; wait"
        spec = LaunchSpec(["bash", "-c", script], dict(os.environ), tmp_path, tmp_path / "x.log")
        return await ProcessAttempt.start(spec)

    async def main():
        engine = Engine([Unit(name="x", start=start)], grace=1)
        task = asyncio.ensure_future(engine.run())
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            await asyncio.sleep(0.01)
        engine.request_stop("interrupted", interrupted=True)
        return await task

    result = asyncio.run(main())
    assert result.interrupted
    assert not alive(int(pidfile.read_text()))


def test_leftover_background_process_is_reaped_when_task_ends(tmp_path: Path):
    pidfile = tmp_path / "bg.pid"

    async def start(n):
        spec = LaunchSpec(
            ["bash", "-c", f"sleep 60 & echo $! > {pidfile}"], dict(os.environ), tmp_path, tmp_path / "x.log"
        )
        return await ProcessAttempt.start(spec)

    result, _ = run([Unit(name="x", start=start)])
    assert result.ok
    assert not alive(int(pidfile.read_text()))


def test_interrupt_cancels_a_ready_service_rather_than_succeeding_it():
    async def main():
        server = unit("server", plan=[dict(duration=30, ready_after=0.01, stop_delay=0.2)])
        client = unit("client", ["server"], plan=[dict(duration=30)])
        engine = Engine([server, client])
        task = asyncio.ensure_future(engine.run())
        await asyncio.sleep(0.1)
        engine.request_stop("interrupted", interrupted=True)
        return await task

    result = asyncio.run(main())
    assert result.units["server"].state is State.CANCELLED
    assert result.units["client"].state is State.CANCELLED


class Broken(Scripted):
    """An attempt whose wait() itself fails (a full disk while collecting its outputs)."""

    async def wait(self):
        await super().wait()
        raise OSError("No space left on device")


def test_an_internal_error_fails_the_unit_instead_of_hanging_the_run():
    async def start(n):
        return Broken(duration=0.01)

    result, _ = run([Unit(name="x", start=start), unit("after", ["x"])])
    assert result.units["x"].state is State.FAILED
    assert (
        "internal error" in result.units["x"].outcome.reason
        and "No space left" in result.units["x"].outcome.reason
    )
    assert result.units["after"].state is State.CANCELLED


def test_a_failing_listener_does_not_stop_scheduling():
    def bad_listener(event):
        raise RuntimeError("view crashed")

    result = asyncio.run(Engine([unit("a"), unit("b", ["a"])], listeners=[bad_listener]).run())
    assert result.ok


def test_a_user_error_at_start_is_not_retried_and_counts_as_an_attempt():
    from sflow.errors import UserError

    calls = []

    async def start(n):
        calls.append(n)
        raise UserError("undefined variable 'NOPE'")

    result, _ = run([Unit(name="x", start=start, retries=RetryPolicy(count=3))])
    assert calls == [1]
    assert result.units["x"].state is State.FAILED and result.units["x"].attempts == 1


def test_run_returns_only_after_services_have_stopped():
    server = unit("server", plan=[dict(duration=30, ready_after=0.01, stop_delay=0.3)])
    result, _ = run([server, unit("client", ["server"])])
    assert result.ok
    attempt = server.meta["attempts"][0]
    assert attempt.stopped and attempt._done.done()  # the stop finished before run() returned


def test_second_stop_request_with_force_skips_the_grace():
    class Stubborn(Scripted):
        async def stop(self, grace):
            self.stopped = True
            await asyncio.wait({self._done}, timeout=grace)  # ignores TERM: only KILL ends it
            self._end(False, "killed by SIGKILL")

    async def start(n):
        return Stubborn(duration=60)

    async def main():
        engine = Engine([Unit(name="x", start=start)], grace=600)
        task = asyncio.ensure_future(engine.run())
        await asyncio.sleep(0.05)
        engine.request_stop("interrupted", interrupted=True)
        await asyncio.sleep(0.05)
        engine.request_stop("interrupted", interrupted=True, force=True)
        return await asyncio.wait_for(task, 60)  # far less than the grace it no longer waits out

    result = asyncio.run(main())
    assert result.interrupted


def test_kept_units_succeed_without_starting_and_release_their_dependents():
    log = []
    result, events = run(
        [
            unit("a", log=log, kept="kept: succeeded, unchanged"),
            unit("b", ["a"], log=log, kept="kept: succeeded, unchanged"),
            unit("c", ["b"], log=log),
            unit("d", ["a"], log=log),
        ]
    )
    assert result.ok
    assert sorted(name for _, name, *_ in log) == ["c", "d"]  # a and b never start
    assert result.units["a"].state is State.SUCCEEDED and result.units["a"].attempts == 0
    kept = [e for e in events if e.unit in ("a", "b")]
    assert [(e.unit, e.state, e.outcome.reason) for e in kept] == [
        ("a", State.SUCCEEDED, "kept: succeeded, unchanged"),
        ("b", State.SUCCEEDED, "kept: succeeded, unchanged"),
    ]


def test_a_run_of_kept_units_only_ends_at_once():
    result, _ = run([unit("a", kept="kept"), unit("b", ["a"], kept="kept")])
    assert result.ok and all(r.attempts == 0 for r in result.units.values())


class Doomed(Attempt):
    """An attempt whose end is found to doom the run: it stops the run, then fails for good."""

    def __init__(self, engine_box):
        self.info, self.log_path, self.engine_box = {}, None, engine_box

    async def wait(self):
        await asyncio.sleep(0.01)
        self.engine_box[0].request_stop("the allocation was cancelled")
        return Outcome(ok=False, reason="exit code 143", retryable=False)

    async def stop(self, grace):
        pass


def test_a_failure_no_retry_can_fix_is_failed_even_when_it_stops_the_run():
    box = []

    async def start(_n):
        return Doomed(box)

    engine = Engine(
        [
            Unit(name="doomed", start=start, retries=RetryPolicy(count=3)),
            unit("other", plan=[dict(duration=5)]),
        ]
    )
    box.append(engine)
    result = asyncio.run(engine.run())
    assert result.units["doomed"].state is State.FAILED and result.units["doomed"].attempts == 1
    assert result.units["other"].state is State.CANCELLED
    assert result.stop_reason == "the allocation was cancelled"


def test_an_attempt_being_stopped_is_announced_as_stopping_before_it_ends():
    slow = unit("slow", plan=[dict(duration=600)])
    _, events = run([unit("bad", plan=[dict(duration=0.01, ok=False)]), slow], grace=7)
    seen = [(e.state, e.message) for e in events if e.unit == "slow"]
    assert seen == [(State.RUNNING, ""), (State.STOPPING, "grace 7s"), (State.CANCELLED, "")]


def test_a_timed_out_attempt_is_stopping_then_failed():
    _, events = run([unit("slow", plan=[dict(duration=10)], timeout=0.1)])
    assert [e.state for e in events] == [State.RUNNING, State.STOPPING, State.FAILED]
