"""Benchmark of the Python front door (`sflow.flow`).

    .venv/bin/python bench/bench_flow.py [--items 10000] [--repeat 5] [--no-slurm]

Prints microseconds per item for a mapped trivial task on the in-process `local`
executor (async and sync functions; targets 15 µs and 50 µs at 10,000 items), the fixed
cost of a small flow, and, when the dev Slurm cluster is up (`scripts/dev-slurm status`),
the round trip of one task and a mapped task on Slurm (one job array).
Figures are the best of `--repeat` runs, each a whole flow (`record=False`); the CPU time
of the process (every thread) in the run with the best wall time follows in parentheses,
as a shared machine stretches wall time more than CPU time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sflow.dispatch
import sflow.flow

TARGET_ASYNC_US = 15.0
TARGET_SYNC_US = 50.0
REPO = Path(__file__).resolve().parents[1]


def inc_sync(x: int) -> int:
    return x + 1


async def inc_async(x: int) -> int:
    return x + 1


Timing = tuple[float, float]  # wall and CPU seconds


def _mapped(
    fn: Callable[[int], object], items: int, max_concurrent: int | None = None, retries: int = 0
) -> Timing:
    """Seconds for one whole flow mapping `fn` over `items` integers."""
    started, cpu = time.perf_counter(), time.process_time()
    with sflow.flow("bench", record=False) as f:
        f.task(name="inc", map=range(items), max_concurrent=max_concurrent, retries=retries)(fn)
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    assert len(f.result.inc) == items
    return elapsed


def _chain(length: int, record: bool, out: str) -> Timing:
    started, cpu = time.perf_counter(), time.process_time()
    with sflow.flow("chain", record=record, output_dir=out) as f:
        f.task(name="t0")(lambda: 0)
        for i in range(1, length):
            exec(
                f"def t{i}(t{i - 1}): return t{i - 1} + 1", globals()
            )  # a param named after the previous task
            f.task(globals()[f"t{i}"])
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    assert f.result[f"t{length - 1}"] == length - 1
    return elapsed


def best(fn: Callable[[], Timing], repeat: int) -> Timing:
    return min(fn() for _ in range(repeat))


def bench_local(items: int, repeat: int) -> None:
    for label, fn, target, limit in (
        ("async, unbounded", inc_async, TARGET_ASYNC_US, None),
        ("async, max_concurrent=64", inc_async, TARGET_ASYNC_US, 64),
        ("sync, threads", inc_sync, TARGET_SYNC_US, None),
    ):
        seconds, cpu = best(lambda fn=fn, limit=limit: _mapped(fn, items, limit), repeat)
        per_item = seconds / items * 1e6
        verdict = "ok" if per_item <= target else "OVER TARGET"
        print(
            f"local map {items} items, {label:26s} {per_item:7.2f} us/item (cpu {cpu / items * 1e6:6.2f})"
            f"  (target {target:g})  {verdict}"
        )
    for label, fn in (("async, retries=1 (per item)", inc_async), ("sync, retries=1 (per item)", inc_sync)):
        seconds, cpu = best(lambda fn=fn: _mapped(fn, items, retries=1), repeat)
        print(
            f"local map {items} items, {label:26s} {seconds / items * 1e6:7.2f} us/item"
            f" (cpu {cpu / items * 1e6:6.2f})"
        )
    with tempfile.TemporaryDirectory() as out:
        for record in (False, True):
            seconds, cpu = best(lambda record=record: _chain(100, record, out), repeat)
            print(
                f"local chain of 100 tasks, record={record!s:5s}      {seconds * 1e3:7.1f} ms total"
                f" (cpu {cpu * 1e3:6.1f})"
            )


def slurm_up() -> bool:
    script = REPO / "scripts" / "dev-slurm"
    if not script.exists() or shutil.which("sbatch") is None:
        return False
    try:
        proc = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _slurm_env() -> None:
    out = subprocess.run([str(REPO / "scripts" / "dev-slurm"), "env"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            os.environ[key] = value.strip().strip("'\"")


def bench_slurm(items: int) -> None:
    _slurm_env()
    shared = tempfile.mkdtemp(prefix="sflow-bench-", dir=os.environ.get("SFLOW_SLURM_LAB_DIR"))
    sflow.dispatch.config(
        environments={
            "slurm": {
                "executor": "slurm",
                "executor_config": {"poll_interval": 0.5, "shared_dir": shared, "time": "0:05:00"},
            }
        }
    )
    try:
        for run in (1, 2):
            started = time.perf_counter()
            with sflow.flow("bench-slurm", environment="slurm", record=False) as f:
                f.task(name="one")(lambda: 1)
            elapsed = time.perf_counter() - started
            print(f"slurm: one task round trip, run {run} (sbatch -> callback) {elapsed:7.2f} s")
        started = time.perf_counter()
        with sflow.flow("bench-slurm-map", environment="slurm", record=False) as f:
            f.task(name="inc", map=range(items))(inc_sync)
        elapsed = time.perf_counter() - started
        assert f.result.inc == [x + 1 for x in range(items)]
        print(f"slurm: map of {items} items as one job array              {elapsed:7.2f} s")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slurm-items", type=int, default=200)
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_local(args.items, args.repeat)
    if args.no_slurm:
        return 0
    if not slurm_up():
        print("slurm: dev cluster not up (scripts/dev-slurm up); skipped")
        return 0
    bench_slurm(args.slurm_items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
