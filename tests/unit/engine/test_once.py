import asyncio

import pytest

from sflow.engine.once import Once


def test_the_work_starts_on_the_first_call_and_runs_once_for_every_caller(run_async):
    starts = []

    async def work() -> str:
        starts.append(1)
        await asyncio.sleep(0)
        return "ended"

    async def scenario():
        once = Once(work)
        assert not once.started and starts == []
        results = await asyncio.gather(once(), once(), once())
        assert once.started
        return results, await once()

    assert run_async(scenario) == (["ended"] * 3, "ended")
    assert starts == [1]


def test_a_cancelled_caller_does_not_cancel_the_work_of_the_others(run_async):
    release = None

    async def work() -> int:
        await release.wait()
        return 7

    async def scenario():
        nonlocal release
        release = asyncio.Event()
        once = Once(work)
        first = asyncio.ensure_future(once())
        second = asyncio.ensure_future(once())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        release.set()
        return await second

    assert run_async(scenario) == 7


def test_the_work_s_error_reaches_every_caller(run_async):
    async def work() -> int:
        raise RuntimeError("no")

    async def scenario():
        once = Once(work)
        errors = await asyncio.gather(once(), once(), return_exceptions=True)
        return [str(e) for e in errors]

    assert run_async(scenario) == ["no", "no"]
