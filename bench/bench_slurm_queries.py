"""Benchmark: how many Slurm queries one `sflow run` makes of the controller.

    .venv/bin/python bench/bench_slurm_queries.py [--tasks 20] [--seconds 3]

Needs the dev Slurm cluster (`scripts/dev-slurm up`). Runs a workflow of `--tasks` parallel tasks
(each `sleep --seconds`, srun steps in one 2-node allocation sflow makes) through `sflow run`,
twice: to the end, and stopped by SIGTERM while every task runs. Wrappers placed first on PATH
count each call of squeue, scontrol, sacct and sinfo before running the real command. Prints
the counts per scenario (run it with `PYTHONPATH=<other checkout>/src` to compare two versions).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTED = ("squeue", "scontrol", "sacct", "sinfo")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_slurm import slurm_env  # noqa: E402


def wrappers(where: Path, env: dict[str, str]) -> Path:
    """A directory of scripts that log their name, then run the real command."""
    where.mkdir()
    for name in COUNTED:
        real = shutil.which(name, path=env["PATH"])
        assert real, f"{name} is not installed"
        script = where / name
        script.write_text(f'#!/bin/sh\necho {name} >> "{where}/calls"\nexec {real} "$@"\n')
        script.chmod(0o755)
    return where


def workflow(path: Path, tasks: int, seconds: float, job_name: str) -> Path:
    lines = [
        'version: "0.1"',
        "backends:",
        f"- {{name: cluster, type: slurm, default: true, nodes: 2, time: '00:10:00', job_name: {job_name}}}",
        "workflow:",
        "  name: parallel",
        "  tasks:",
    ]
    lines += [f"  - {{name: t{i}, script: ['sleep {seconds:g}']}}" for i in range(tasks)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(wf: Path, out: Path, env: dict[str, str], calls: Path, stop_after: float | None) -> Counter[str]:
    """`sflow run` of `wf`; SIGTERM after `stop_after` seconds of every task running, if given."""
    calls.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "sflow", "run", "-q", "-f", str(wf), "--output-dir", str(out)]
    proc = subprocess.Popen(argv, env=env, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if stop_after is not None:
        while proc.poll() is None and len(list(out.rglob("t*.log.step"))) < int(env["BENCH_TASKS"]):
            time.sleep(0.1)
        time.sleep(stop_after)
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=600)
    names = calls.read_text().split() if calls.exists() else []
    return Counter(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    env = slurm_env()
    tmp = Path(tempfile.mkdtemp(prefix="sflow-bench-", dir=env.get("SFLOW_SLURM_LAB_DIR", "/tmp") + "/work"))
    bin_dir = wrappers(tmp / "bin", env)
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "BENCH_TASKS": str(args.tasks)}
    name = f"sflow-bench-q-{uuid.uuid4().hex[:6]}"
    figures = {}
    for scenario, stop_after in (("to the end", None), ("SIGTERM while all run", 1.0)):
        out = tmp / scenario.split()[0]
        out.mkdir()
        wf = workflow(out / "parallel.yaml", args.tasks, args.seconds if stop_after is None else 600, name)
        counts = run(wf, out, env, bin_dir / "calls", stop_after)
        figures[scenario] = {tool: counts.get(tool, 0) for tool in COUNTED}
    print(f"Slurm queries of one `sflow run` of {args.tasks} parallel srun tasks (code: {code_origin()})")
    for scenario, counts in figures.items():
        print(f"  {scenario:<24} " + "  ".join(f"{tool} {n:3d}" for tool, n in counts.items()))
    print(json.dumps(figures))


def code_origin() -> str:
    import sflow

    return str(Path(sflow.__file__).resolve().parents[1])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
