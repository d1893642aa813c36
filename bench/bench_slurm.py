"""Benchmark: what sflow adds to Slurm job steps.

    .venv/bin/python bench/bench_slurm.py [--steps 20] [--repeat 3]

Needs the dev Slurm cluster (`scripts/dev-slurm up`). Inside ONE allocation it times:
- bare: `--steps` sequential `srun --jobid J --overlap -N1 true` (the floor: Slurm's own cost);
- engine: a YAML chain of `--steps` tasks running `true` via the library (`WorkflowRun`, reusing
  the allocation as inside sbatch); the figure is the engine's elapsed time;
- cli: the same chain through `python -m sflow run` (adds interpreter start-up, imports, spec load).
And, once, the whole `sflow run` with its own salloc + scancel. Target: engine - bare <= +1 s.
Figures are the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_EXTRA_S = 1.0


def slurm_env() -> dict[str, str]:
    out = subprocess.run([str(REPO / "scripts" / "dev-slurm"), "env"], capture_output=True, text=True)
    env = dict(os.environ)
    for line in out.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value.strip("'\"")
    return env


def workflow(path: Path, steps: int, job_name: str) -> Path:
    lines = [
        'version: "0.1"',
        "backends:",
        f"- {{name: cluster, type: slurm, default: true, nodes: 1, time: '00:10:00', job_name: {job_name}}}",
        "workflow:",
        "  name: chain",
        "  tasks:",
    ]
    for i in range(steps):
        dep = f", depends_on: [t{i - 1}]" if i else ""
        lines.append(f"  - {{name: t{i}, script: ['true']{dep}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def bare(job: str, steps: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        subprocess.run(["srun", "--jobid", job, "--overlap", "-N1", "-n1", "true"], check=True, env=env)
    return time.perf_counter() - started


def engine(wf: Path, out: Path) -> float:
    """The engine's elapsed time for the chain, reusing the allocation named in os.environ."""
    from sflow.lifecycle.settings import RunSettings
    from sflow.schema import load_workflow
    from sflow.workflow.run import WorkflowRun

    run = WorkflowRun(load_workflow([str(wf)]), RunSettings(workspace_dir=out, output_dir=out))
    result = asyncio.run(run.run())
    assert result.ok, result.stop_reason
    return result.elapsed


def cli(wf: Path, out: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "sflow", "run", "-q", "-f", str(wf), "--output-dir", str(out)]
    subprocess.run(argv, check=True, env=env, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def allocate(env: dict[str, str], name: str) -> tuple[str, str]:
    subprocess.run(["salloc", "--no-shell", "-N1", "-t", "10", "-J", name], check=True, env=env)
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %N"], capture_output=True, text=True, env=env)
    job, nodes = out.stdout.split()
    return job, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = slurm_env()
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    name = f"sflow-bench-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="sflow-bench-", dir=env.get("SFLOW_SLURM_LAB_DIR", "/tmp") + "/work"))
    wf = workflow(tmp / "chain.yaml", args.steps, f"{name}-own")
    job, nodes = allocate(env, name)
    inside = {**env, "SLURM_JOB_ID": job, "SLURM_JOB_NODELIST": nodes}
    try:
        os.environ.update({"SLURM_JOB_ID": job, "SLURM_JOB_NODELIST": nodes})
        figures = {
            "bare": min(bare(job, args.steps, env) for _ in range(args.repeat)),
            "engine": min(engine(wf, tmp) for _ in range(args.repeat)),
            "cli": min(cli(wf, tmp, inside) for _ in range(args.repeat)),
        }
    finally:
        for key in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST"):
            os.environ.pop(key, None)
        subprocess.run(["scancel", job], env=env, check=False)
    figures["cli+salloc"] = cli(wf, tmp, env)
    report(args.steps, figures)


def report(steps: int, figures: dict[str, float]) -> None:
    base = figures["bare"]
    print(f"{steps}-step chain of `true` (best of runs; one allocation unless noted)")
    labels = {
        "bare": "bare srun x N",
        "engine": "sflow engine (library)",
        "cli": "sflow run (CLI, reused job)",
        "cli+salloc": "sflow run (CLI, own salloc)",
    }
    for key, label in labels.items():
        extra = figures[key] - base
        per = 1000 * extra / steps
        print(f"  {label:<30} {figures[key]:7.3f} s   {extra:+7.3f} s vs bare ({per:+6.1f} ms/step)")
    ok = figures["engine"] - base <= TARGET_EXTRA_S
    print(f"target: engine <= bare + {TARGET_EXTRA_S:g} s: {'met' if ok else 'MISSED'}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
