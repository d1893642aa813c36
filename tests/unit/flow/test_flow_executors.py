"""Tasks routed to out-of-process executors: the same path a Slurm job takes, without Slurm.

The `subprocess` executor runs `python -m sflow.dispatch.worker` with a payload and signed
callbacks, exactly as a Slurm job does; `process` uses a process pool.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import flow_helpers as h
import pytest

import sflow.flow
from sflow.dispatch.config import config as configure_dispatch
from sflow.engine import State


@pytest.fixture
def worker_env(tmp_path: Path) -> str:
    shared = tmp_path / "shared"
    shared.mkdir()
    configure_dispatch(
        environments={
            "sub": {
                "executor": "subprocess",
                "executor_config": {
                    "shared_dir": str(shared),
                    "listen_host": "127.0.0.1",
                    "result_grace": 1.0,
                },
            },
            "pool": {"executor": "process", "executor_config": {"max_workers": 2}},
        }
    )
    return str(shared)


def test_round_trip_and_mixed_environments(worker_env: str, tmp_path: Path) -> None:
    with sflow.flow("remote", inputs={"n": 4}, output_dir=tmp_path / "out") as f:

        @f.task
        def numbers(n):
            return list(range(n))

        f.task(h.double, name="doubled", map="numbers", environment="sub")
        f.task(h.where, name="elsewhere", environment="sub")

        @f.task
        def total(doubled):
            return sum(doubled)

    assert f.result.doubled == [0, 2, 4, 6]
    assert f.result.total == 12
    assert f.result.elsewhere[1] != os.getpid()  # ran in another process
    assert f.run_dir is not None
    summary = json.loads((f.run_dir / "summary.json").read_text())
    assert summary["tasks"]["doubled"]["executor"] == "subprocess"
    assert summary["tasks"]["doubled"]["items"] == 4


def test_remote_exception_keeps_type_and_traceback(worker_env: str) -> None:
    with (
        pytest.raises(h.PipelineError) as info,
        sflow.flow("remote-fail", environment="sub", record=False) as f,
    ):
        f.task(h.explode, name="boom", map=[1, 2])
    assert info.value.code == 7
    notes = "\n".join(info.value.__notes__)
    assert "Remote traceback" in notes and "in explode" in notes
    assert f.states["boom"] is State.FAILED


def test_closure_runs_in_a_process_pool(worker_env: str) -> None:
    factor = 3
    with sflow.flow("pool", environment="pool", record=False) as f:

        @f.task(map=[1, 2])
        def scaled(x):
            return x * factor

        @f.task
        async def total(scaled):
            await asyncio.sleep(0)
            return sum(scaled)

    assert f.result.scaled == [3, 6]
    assert f.result.total == 9


def test_remote_timeout_counts_from_the_calls_start(tmp_path: Path) -> None:
    """A task queued behind a longer one (one slot) longer than its timeout still succeeds.

    `first` has no timeout and holds the slot for 5 s; `second` (timeout 4 s) waits for it,
    then runs in well under its 4 s. Only the time it runs counts.
    """
    shared = tmp_path / "shared"
    shared.mkdir()
    configure_dispatch(
        environments={
            "one": {
                "executor": "subprocess",
                "executor_config": {"shared_dir": str(shared), "listen_host": "127.0.0.1"},
                "max_concurrent": 1,
            }
        }
    )
    with sflow.flow("queued", environment="one", record=False) as f:

        @f.task
        def first():
            import time

            time.sleep(5)
            return 1

        @f.task(timeout=4)
        def second():
            return 2

    assert (f.result.first, f.result.second) == (1, 2)
    assert f.run_result is not None
    waited = f.run_result.units["second"]
    assert waited.ended is not None and waited.started is not None
    assert waited.ended - waited.started > 4  # it was queued longer than its timeout


def test_remote_timeout_is_a_task_timeout(worker_env: str) -> None:
    with (
        pytest.raises(sflow.flow.TaskTimeout, match="'nap'"),
        sflow.flow("remote-timeout", environment="sub", record=False) as f,
    ):

        @f.task(timeout=1.0)
        def nap():
            import time

            time.sleep(30)


_POOL_SCRIPT = """
import sflow
import sflow.flow

sflow.config(environments={{"pool": {{"executor": "process", "executor_config": {{"mp_context": "{context}"}}}}}})

def main():
    with sflow.flow("pool", environment="pool", record=False) as f:
        @f.task(map=[1, 2, 3])
        def square(x):
            return x * x
    print("result", f.result.square)
"""


def _run_script(path: Path) -> subprocess.CompletedProcess[str]:
    # the timeout only turns a hang into a failure; nothing here measures time
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=path.parent
    )


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
def test_process_executor_in_a_script_without_a_main_guard_fails_naming_the_guard(
    tmp_path: Path, context: str
) -> None:
    script = tmp_path / "noguard.py"
    script.write_text(_POOL_SCRIPT.format(context=context) + "main()\n")
    done = _run_script(script)
    assert done.returncode == 1, done.stderr
    assert "result" not in done.stdout
    assert f'the main script {script} has no `if __name__ == "__main__":` guard' in done.stderr
    assert "bootstrapping phase" not in done.stderr  # multiprocessing's own error stays out of sight


def test_process_executor_in_a_script_with_a_main_guard_works(tmp_path: Path) -> None:
    script = tmp_path / "guarded.py"
    script.write_text(_POOL_SCRIPT.format(context="forkserver") + 'if __name__ == "__main__":\n    main()\n')
    done = _run_script(script)
    assert done.returncode == 0, done.stderr
    assert "result [1, 4, 9]" in done.stdout
