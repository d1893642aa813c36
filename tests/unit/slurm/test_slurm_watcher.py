"""`sflow.slurm.watcher`: one run's one poll, whoever asks (a fake command runner stands for Slurm)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sflow.backends.slurm_watch import SlurmJobWatch
from sflow.slurm.commands import SlurmCommandError, SlurmResult
from sflow.slurm.watcher import JobStatus, SlurmWatcher, run_watcher


class FakeSlurm:
    """Answers squeue from `jobs` ({id: state}) and `steps` ({step: name}); records every call."""

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}
        self.steps: dict[str, str] = {}
        self.calls: list[list[str]] = []
        self.failing = 0  # how many of the next calls fail as an unreachable controller does
        self.accounted: str | None = None  # sacct's output; None: the cluster has no accounting

    async def __call__(self, argv: Sequence[str], timeout: float) -> SlurmResult:
        self.calls.append(list(argv))
        await asyncio.sleep(0)
        if self.failing:
            self.failing -= 1
            raise SlurmCommandError(argv, 1, "squeue: error: Unable to contact slurm controller")
        asked = argv[argv.index("-j") + 1].split(",") if "-j" in argv else []
        if argv[0] == "scontrol":
            return SlurmResult("")
        if argv[0] == "sacct":
            if self.accounted is None:
                raise SlurmCommandError(argv, 1, "sacct: error: Slurm accounting storage is disabled")
            return SlurmResult(self.accounted)
        if "--steps" in argv:
            found = [f"{s}|{n}" for s, n in self.steps.items() if s.split(".")[0] in asked]
        else:
            found = [f"{j} {s}" for j, s in self.jobs.items() if j.split("_")[0] in asked]
        return SlurmResult("".join(line + "\n" for line in found))

    def squeues(self, steps: bool = False) -> list[list[str]]:
        return [c for c in self.calls if c[0] == "squeue" and ("--steps" in c) == steps]


def watcher_for(fake: FakeSlurm, interval: float = 0.01) -> SlurmWatcher:
    return SlurmWatcher(interval=interval, runner=fake)


async def until(condition: Callable[[], object], what: str, limit: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


def test_one_squeue_per_poll_whatever_the_number_of_subscribers(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.jobs = {str(100 + i): "RUNNING" for i in range(13)}

    async def scenario() -> None:
        watcher = watcher_for(fake)
        heard: list[list[JobStatus]] = [[] for _ in range(4)]
        subscriptions = [watcher.subscribe(heard[i].append) for i in range(4)]
        for i, subscription in enumerate(subscriptions):  # three jobs each, one shared by all
            subscription.watch([str(100 + 3 * i), str(101 + 3 * i), str(102 + 3 * i), "112"])
        await until(lambda: watcher.polls >= 3, "three polls")
        for subscription in subscriptions:
            subscription.close()
        assert len(fake.calls) == watcher.polls  # one call a poll, not one per job or subscriber
        assert {c[-1] for c in fake.calls} == {",".join(sorted(fake.jobs, key=int))}
        assert all([s.state for s in told] == ["RUNNING"] * 4 for told in heard)  # told once each

    run_async(scenario())


def test_listener_hears_each_change_and_an_ended_job_leaves(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.jobs = {"7": "PENDING"}

    async def scenario() -> None:
        watcher = watcher_for(fake)
        heard: list[str] = []
        subscription = watcher.subscribe(lambda s: heard.append(s.state))
        subscription.watch(["7"])
        await until(lambda: heard == ["PENDING"], "PENDING told")
        fake.jobs["7"] = "RUNNING"
        await until(lambda: heard == ["PENDING", "RUNNING"], "RUNNING told")
        fake.jobs["7"] = "CANCELLED"
        await until(lambda: heard[-1] == "CANCELLED", "CANCELLED told")
        assert subscription.jobs == []
        await until(lambda: watcher._task is not None and watcher._task.done(), "the poll stops")
        polls = watcher.polls
        await asyncio.sleep(0.05)
        assert watcher.polls == polls  # nothing watched: no call at all
        assert heard == ["PENDING", "RUNNING", "CANCELLED"]

    run_async(scenario())


def test_callers_asking_at_once_share_one_poll(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.jobs = {"5": "RUNNING", "6": "COMPLETING"}

    async def scenario() -> None:
        watcher = watcher_for(fake, interval=3600.0)  # only a caller's question makes it poll
        answers = await asyncio.gather(*(watcher.status("5" if i % 2 else "6") for i in range(10)))
        assert {a.state for a in answers} == {"RUNNING", "COMPLETING"}
        assert len(fake.calls) == 1 and fake.calls[0][-1] == "5,6"

    run_async(scenario())


def test_the_poll_ends_with_its_last_answer(run_async: Callable[..., Any]) -> None:
    """Once the last caller has its answer, nothing is polled for it any more: no Slurm command is
    under way when the run that asked ends a moment later."""
    fake = FakeSlurm()
    fake.jobs = {"5": "COMPLETED"}

    async def scenario() -> None:
        watcher = watcher_for(fake, interval=3600.0)
        await watcher.wait_for("5", lambda s: s.terminal)
        assert watcher._task is not None and watcher._task.done()
        assert len(fake.calls) == 1

    run_async(scenario())


def test_an_allocation_steps_and_jobs_ride_in_the_same_poll(run_async: Callable[..., Any]) -> None:
    """The three users: the backend's allocation watch, the srun launcher waiting for its steps to
    go, the dispatch executor's jobs: per poll, one squeue for the jobs, one for the steps."""
    fake = FakeSlurm()
    fake.jobs = {"40": "RUNNING", "41_0": "RUNNING", "41_1": "PENDING", "42": "RUNNING"}
    fake.steps = {"40.0": "train", "40.1": "serve", "40.2": "eval"}

    async def scenario() -> None:
        watcher = watcher_for(fake, interval=0.02)
        allocation = SlurmJobWatch("40", "cluster", watcher, interval=0.02)
        watching = asyncio.ensure_future(allocation.run())
        dispatched = watcher.subscribe(lambda s: None)
        dispatched.watch(["41_0", "41_1", "42"])
        gone = [asyncio.ensure_future(watcher.step_gone(s, timeout=30)) for s in fake.steps]
        await until(lambda: len(fake.squeues(steps=True)) >= 2, "two step polls")
        del fake.steps["40.0"], fake.steps["40.2"]
        await until(lambda: gone[0].done() and gone[2].done(), "steps 0 and 2 seen gone")
        assert not gone[1].done()
        fake.steps.clear()
        await asyncio.gather(*gone)
        job_polls, step_polls = fake.squeues(), fake.squeues(steps=True)
        assert len(job_polls) == watcher.polls and len(step_polls) <= watcher.polls
        assert all(c[-1] == "40,41,42" for c in job_polls)
        assert all(c[-1] == "40" for c in step_polls)
        assert allocation.ended is None
        watching.cancel()
        dispatched.close()

    run_async(scenario())


def test_an_allocation_that_ends_stops_the_watch_with_its_reason(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.jobs = {"40": "RUNNING"}

    async def scenario() -> None:
        watcher = watcher_for(fake)
        allocation = SlurmJobWatch("40", "cluster", watcher, interval=0.01)
        reasons: list[str] = []
        allocation.on_end = reasons.append
        watching = asyncio.ensure_future(allocation.run())
        assert await allocation.check() is None  # asked now: alive
        fake.jobs["40"] = "TIMEOUT"
        await asyncio.wait_for(watching, 30)
        assert reasons == ["Slurm allocation 40 (backend 'cluster') reached its time limit (TIMEOUT)"]

    run_async(scenario())


def test_a_controller_away_fails_a_question_now_but_not_a_wait(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.jobs = {"9": "RUNNING"}

    async def scenario() -> None:
        watcher = watcher_for(fake)
        fake.failing = 1
        with pytest.raises(SlurmCommandError, match="Unable to contact"):
            await watcher.status("9")
        fake.failing = 2
        fake.jobs["9"] = "COMPLETED"
        status = await watcher.wait_for("9", lambda s: s.terminal, timeout=30)
        assert status.state == "COMPLETED" and len(fake.calls) == 4

    run_async(scenario())


def test_a_job_nobody_knows_has_vanished(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()

    async def scenario() -> None:
        status = await watcher_for(fake).status("77")
        assert status.state == "VANISHED" and status.terminal
        assert [c[0] for c in fake.calls] == ["squeue", "scontrol", "sacct"]

    run_async(scenario())


def test_a_job_only_accounting_remembers_has_its_recorded_end(run_async: Callable[..., Any]) -> None:
    fake = FakeSlurm()
    fake.accounted = "77|OUT_OF_MEMORY|0:125\n77.batch|OUT_OF_MEMORY|0:125\n"

    async def scenario() -> None:
        status = await watcher_for(fake).status("77")
        assert (status.state, status.exit_code) == ("OUT_OF_MEMORY", "0:125")

    run_async(scenario())


def test_pace_is_the_quickest_asked_for_quicker_while_callers_wait_slower_after_failures(
    run_async: Callable[..., Any],
) -> None:
    async def scenario() -> None:
        watcher = SlurmWatcher(interval=10.0, max_backoff=60.0, runner=FakeSlurm())
        assert watcher._delay(0) == 10.0
        watcher.subscribe(lambda s: None, interval=2.0).watch(["1"])
        watcher.subscribe(lambda s: None, interval=0.5)  # watches nothing: does not set the pace
        assert watcher._delay(0) == 2.0
        assert watcher._delay(3) == 16.0 and watcher._delay(9) == 60.0

    run_async(scenario())


def test_one_watcher_per_event_loop() -> None:
    async def two() -> tuple[SlurmWatcher, SlurmWatcher, SlurmWatcher]:
        return run_watcher(), run_watcher(), run_watcher(["/fake/squeue"])

    first, again, other = asyncio.run(two())
    assert first is again and other is not first
    assert asyncio.run(two())[0] is not first  # another run, another loop: its own watcher
