"""Speed of the local engine and the CLI. Prints figures next to their targets.

    python bench/bench_engine.py            # all
    python bench/bench_engine.py --quick    # smaller dry-run workflow

Figures (targets on a 2-core machine):
  chain100   100-task chain of `true`: engine time beyond the processes themselves (< 0.5 s)
  par1000    1,000 independent `true` tasks, whole `sflow run` (< 3 s)
  help       `sflow --help` wall time (< 150 ms)
  dryrun     `sflow run --dry-run` of a generated 100,000-task workflow (< 5 s, < 400 MB)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SFLOW = [sys.executable, "-m", "sflow"]


def chain_yaml(n: int) -> str:
    lines = ['version: "0.1"', "workflow:", "  name: chain", "  tasks:"]
    for i in range(n):
        lines.append(f"    - name: t{i}")
        lines.append('      script: ["true"]')
        if i:
            lines.append(f"      depends_on: [t{i - 1}]")
    return "\n".join(lines) + "\n"


def parallel_yaml(n: int) -> str:
    lines = ['version: "0.1"', "workflow:", "  name: par", "  tasks:"]
    for i in range(n):
        lines += [f"    - name: t{i}", '      script: ["true"]']
    return "\n".join(lines) + "\n"


def wide_dag_yaml(n: int) -> str:
    """n tasks in layers of 100, each depending on one task of the layer before (block style)."""
    lines = ['version: "0.1"', "workflow:", "  name: big", "  tasks:"]
    for i in range(n):
        lines += [f"    - name: t{i}", "      script:", f"        - echo {i} ${{{{ workflow.name }}}}"]
        if i >= 100:
            lines += ["      depends_on:", f"        - t{i - 100}"]
    return "\n".join(lines) + "\n"


def run_summary(path: Path, out: Path) -> tuple[float, dict]:
    began = time.perf_counter()
    subprocess.run([*SFLOW, "run", "-q", "-f", str(path), "--output-dir", str(out)], check=True)
    wall = time.perf_counter() - began
    run_dir = sorted(out.iterdir())[-1]
    return wall, json.loads((run_dir / "summary.json").read_text())


def processes_alone(n: int) -> float:
    """What n sequential `bash script` processes cost without sflow (the floor)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "t.sh"
        script.write_text("#!/usr/bin/env bash\ntrue\n")
        began = time.perf_counter()
        for _ in range(n):
            subprocess.run(["bash", str(script)], check=True, start_new_session=True)
        return time.perf_counter() - began


def bench_chain(tmp: Path) -> None:
    wf = tmp / "chain.yaml"
    wf.write_text(chain_yaml(100))
    _, summary = run_summary(wf, tmp / "out-chain")
    floor = processes_alone(100)
    engine = summary["elapsed"]
    print(
        f"chain100: engine run {engine:.3f}s, processes alone {floor:.3f}s, overhead {engine - floor:.3f}s (target < 0.5s)"
    )


def bench_parallel(tmp: Path) -> None:
    wf = tmp / "par.yaml"
    wf.write_text(parallel_yaml(1000))
    wall, summary = run_summary(wf, tmp / "out-par")
    print(f"par1000: sflow run {wall:.3f}s wall, engine {summary['elapsed']:.3f}s (target < 3s)")


def bench_help() -> None:
    best = min(_timed([*SFLOW, "--help"]) for _ in range(5))
    print(f"help: sflow --help {best * 1000:.0f} ms best of 5 (target < 150 ms)")


def bench_dry_run(tmp: Path, n: int) -> None:
    wf = tmp / "big.yaml"
    wf.write_text(wide_dag_yaml(n))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    subprocess.run([*SFLOW, "run", "--dry-run", "-f", str(wf)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        f"dryrun: {n} tasks in {wall:.2f}s, peak RSS {max(peak, before) / 1024:.0f} MB (target < 5s, < 400 MB)"
    )


def _timed(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000-task dry run instead of 100,000")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bench_help()
        bench_chain(tmp)
        bench_parallel(tmp)
        bench_dry_run(tmp, 10_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
