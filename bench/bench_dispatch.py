"""Benchmark of `sflow.dispatch`: what running a callable elsewhere costs, next to Slurm's own floor.

    .venv/bin/python bench/bench_dispatch.py [--repeat 3] [--items 200] [--no-slurm]

Prints:
- a round trip of a trivial function on the `local`, `process` and `subprocess` executors;
- on the dev Slurm cluster (`scripts/dev-slurm up`): one call round trip on the `slurm`
  executor vs a bare `sbatch --wrap true` job to COMPLETED, and `--items` mapped calls as one
  job array vs a bare `sbatch --array=0-<items-1> --wrap true` to all COMPLETED.
Figures are the median of `--repeat` runs (the local figures of 200 calls each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cloudpickle

from sflow.dispatch import get_executor

REPO = Path(__file__).resolve().parents[1]
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # jobs need not import this file


def add(a: int, b: int = 0) -> int:
    return a + b


async def median_of(repeat: int, once: Callable[[], Awaitable[float]]) -> float:
    return statistics.median([await once() for _ in range(repeat)])


async def local_round_trips(name: str, config: dict[str, Any], calls: int = 200) -> tuple[float, float]:
    """Microseconds per sequential `await ex.run(add, 1, 2)` on a started executor: wall and this
    process's CPU (every thread; not the CPU of worker processes)."""
    async with get_executor(name, config) as ex:
        await ex.run(add, 1, 2)  # warm up (pool processes, callback server)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await ex.run(add, 1, 2)
        wall = (time.perf_counter() - start) / calls * 1e6
        return wall, (time.process_time() - cpu) / calls * 1e6


def slurm_env() -> dict[str, str] | None:
    """The environment with SLURM_CONF for the dev cluster, or None if it is not up."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env:
        try:
            out = subprocess.run(
                [str(REPO / "scripts" / "dev-slurm"), "env"], capture_output=True, text=True, timeout=30
            )
        except OSError:
            return None
        for line in out.stdout.splitlines():
            if line.startswith("export SLURM_CONF="):
                env["SLURM_CONF"] = line.split("=", 1)[1].strip("'\"")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env)
    return env if ping.returncode == 0 and "UP" in ping.stdout else None


async def sh(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


async def bare_sbatch(array: int | None = None) -> float:
    """Seconds from `sbatch --wrap true` to COMPLETED (every element for an array), polled at 50 ms."""
    start = time.perf_counter()
    flags = [f"--array=0-{array - 1}"] if array else []
    job = (
        await sh("sbatch", "--parsable", "-J", "bench-bare", "-o", "/dev/null", *flags, "--wrap", "true")
    ).strip()
    while True:
        states = (await sh("squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%T")).split()
        if states and all(s == "COMPLETED" for s in states):
            return time.perf_counter() - start
        await asyncio.sleep(0.05)


async def slurm_figures(repeat: int, items: int, shared: str) -> list[tuple[str, float]]:
    config = {"shared_dir": shared, "listen_host": "127.0.0.1", "job_name_prefix": "bench-dispatch"}
    rows: list[tuple[str, float]] = []
    async with get_executor("slurm", config) as ex:

        async def one() -> float:
            start = time.perf_counter()
            await ex.run(add, 1, 2)
            return time.perf_counter() - start

        async def mapped() -> float:
            start = time.perf_counter()
            values = await ex.map(add, range(items), kwargs={"b": 1})
            assert values == [i + 1 for i in range(items)]
            return time.perf_counter() - start

        rows.append(("slurm executor: one call round trip", await median_of(repeat, one)))
        rows.append(("bare sbatch --wrap true to COMPLETED", await median_of(repeat, bare_sbatch)))
        rows.append((f"slurm executor: {items} mapped calls (one array)", await median_of(repeat, mapped)))
        rows.append(
            (
                f"bare sbatch --array=0-{items - 1} --wrap true",
                await median_of(repeat, lambda: bare_sbatch(items)),
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as shared:
        print("round trip of add(1, 2), sequential, after warm-up:")
        for name, config in [
            ("local", {}),
            ("process", {"max_workers": 1}),
            ("subprocess", {"shared_dir": shared, "listen_host": "127.0.0.1"}),
        ]:
            calls = 200 if name != "subprocess" else 20
            wall, cpu = await local_round_trips(name, config, calls)
            print(f"  {name:<11} {wall:>10.0f} µs/call (cpu here {cpu:.0f})")
        env = None if args.no_slurm else slurm_env()
        if env is None:
            print("slurm: skipped (cluster not up: scripts/dev-slurm up)")
            return
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]
        print(f"slurm (median of {args.repeat}):")
        for label, seconds in await slurm_figures(args.repeat, args.items, os.path.join(shared, "slurm")):
            print(f"  {label:<48} {seconds:>7.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
