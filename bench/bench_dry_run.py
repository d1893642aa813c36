"""Where the time of a big `sflow run --dry-run` goes: CPU and wall time of each step, peak memory.

    .venv/bin/python bench/bench_dry_run.py [--tasks 100000] [--runs 3]

The workflow is `bench_engine.wide_dag_yaml(tasks)` (layers of 100 tasks, each after one task of
the layer before). Each run is a fresh interpreter doing what `sflow run --dry-run` does, step by
step: import, load (read, validate, check), plan (expand and order), describe (place, render,
write the text), and free what it made. CPU time is the figure to compare on a shared machine
(wall time grows with what others run); the step figures of the fastest run are printed. Run it
with `PYTHONPATH=<other checkout>/src` to compare two versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import wide_dag_yaml

STEPS = r"""
import json, resource, sys, time
from pathlib import Path

marks = []
wall, cpu = time.perf_counter(), time.process_time()


def mark(step):
    global wall, cpu
    now_wall, now_cpu = time.perf_counter(), time.process_time()
    marks.append((step, now_cpu - cpu, now_wall - wall))
    wall, cpu = now_wall, now_cpu


from sflow.schema import load_workflow
from sflow.workflow.dry_run import describe_plan_pieces
from sflow.workflow.run_plan import plan_run

mark("import")
spec = load_workflow([sys.argv[1]])
mark("load")
workspace = Path(sys.argv[2])
run_plan = plan_run(spec, workspace / "out", fingerprints=False)
mark("plan")
pieces = describe_plan_pieces(spec, workspace, workspace / "out", run_plan)
for piece in pieces:
    sys.stdout.write(piece)
sys.stdout.write("\n")
sys.stdout.flush()
mark("describe")
del spec, run_plan, pieces
mark("free")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"steps": marks, "peak_mb": peak / 1024}), file=sys.stderr)
"""


def one_run(workflow: Path, workspace: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-c", STEPS, str(workflow), str(workspace)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        workflow = tmp / "big.yaml"
        workflow.write_text(wide_dag_yaml(args.tasks))
        one_run(workflow, tmp)  # writes the bytecode
        runs = [one_run(workflow, tmp) for _ in range(args.runs)]
    best = min(runs, key=lambda r: sum(cpu for _, cpu, _ in r["steps"]))
    print(f"dry run of {args.tasks} tasks, fastest of {args.runs} runs by CPU time:")
    for step, cpu, wall in best["steps"]:
        print(f"  {step:<9} {cpu:6.3f} s CPU {wall:6.3f} s wall")
    total_cpu = sum(cpu for _, cpu, _ in best["steps"])
    total_wall = sum(wall for _, _, wall in best["steps"])
    print(
        f"  {'total':<9} {total_cpu:6.3f} s CPU {total_wall:6.3f} s wall, peak RSS {best['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
